import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

/// Where snapshots live and how muster names them: `CLUSTER-REVISION-YYYYMMDDTHHMMSSZ.db`, mode
/// 0600, in the state dir's `snapshots/` unless `--out` names another directory. Only files of
/// that pattern for that cluster are ever listed or pruned.
public enum SnapshotCatalog {
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var revision: Int64
        public var takenAt: Date
        public var size: Int64
        /// The cluster record's entry for this file, when this run's state recorded it.
        public var recorded: ClusterRecord.Snapshot?
    }

    public static func directory(stateDirectory: String, out: String?) -> String {
        URL(fileURLWithPath: out ?? stateDirectory + "/snapshots").standardizedFileURL.path
    }

    /// Where `up` and `replace` keep the snapshot they take before changing a running cluster:
    /// apart from `snapshot save`'s files, so no `--keep` of the operator's prunes them.
    public static func beforeChangeDirectory(stateDirectory: String) -> String {
        directory(stateDirectory: stateDirectory, out: nil) + "/before-change"
    }

    /// How many pre-change backups of a cluster stay: their own count, so that retries of a
    /// failed change (each takes one) keep the backup from before the first attempt.
    public static let beforeChangeKept = 10

    /// The newest of muster's snapshots of `cluster` (`snapshot save`'s and the pre-change
    /// backups) that `muster restore` would accept for members of `memberVersion`: whole, and
    /// of an etcd minor no newer. Reads each candidate, newest first, until one fits.
    public static func newestRestorable(cluster: String, stateDirectory: String, memberVersion: String) -> String? {
        let candidates = (list(cluster: cluster, directory: directory(stateDirectory: stateDirectory, out: nil), record: nil)
            + list(cluster: cluster, directory: beforeChangeDirectory(stateDirectory: stateDirectory), record: nil))
            .sorted { ($0.takenAt, $0.revision) > ($1.takenAt, $1.revision) }
        return candidates.first { (try? Restore.check($0.path, memberVersion: memberVersion, cluster: cluster)) != nil }?.path
    }

    static let stampFormat = "yyyyMMdd'T'HHmmss'Z'"

    public static func stamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = stampFormat
        return formatter.string(from: date)
    }

    /// Links `partial` under `name(at:)` of `start`, or of the next second while that name is
    /// taken (a re-run right after a cut one, within one second): link never replaces a file, so
    /// no snapshot is ever overwritten. Returns the path and the time it names; `partial` stays.
    static func linkUnderFreeName(_ partial: String, from start: Date, name: (Date) -> String) throws -> (path: String, at: Date) {
        var stamp = start
        for _ in 0..<60 {
            let path = name(stamp)
            if link(partial, path) == 0 { return (path, stamp) }
            guard errno == EEXIST else { throw SnapshotError("cannot name the snapshot \(path): \(String(cString: strerror(errno)))") }
            stamp = stamp.addingTimeInterval(1)
        }
        throw SnapshotError("cannot name the snapshot \(name(start)): it and the next 59 seconds' names are taken")
    }

    public static func fileName(cluster: String, revision: Int64, takenAt: Date) -> String {
        "\(cluster)-\(revision)-\(stamp(takenAt)).db"
    }

    /// `(revision, time)` of a file muster named for `cluster`, nil for any other name.
    public static func parse(_ name: String, cluster: String) -> (revision: Int64, takenAt: Date)? {
        guard name.hasPrefix(cluster + "-"), name.hasSuffix(".db") else { return nil }
        let rest = name.dropFirst(cluster.count + 1).dropLast(3)
        let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isASCII), let revision = Int64(parts[0]),
              parts[1].count == 16 else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = stampFormat
        guard let date = formatter.date(from: String(parts[1])), stamp(date) == parts[1] else { return nil }
        return (revision, date)
    }

    /// muster's snapshots of `cluster` in `directory`, oldest first.
    public static func list(cluster: String, directory: String, record: ClusterRecord?) -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let recorded = Dictionary((record?.snapshots ?? []).map { ($0.file, $0) }, uniquingKeysWith: { _, last in last })
        return names.compactMap { name -> Entry? in
            guard let (revision, takenAt) = parse(name, cluster: cluster) else { return nil }
            let path = directory + "/" + name
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int).map { Int64($0) } ?? 0
            return Entry(path: path, revision: revision, takenAt: takenAt, size: size, recorded: recorded[path])
        }.sorted { ($0.takenAt, $0.revision, $0.path) < ($1.takenAt, $1.revision, $1.path) }
    }
}

extension PlanBuilder {
    /// The workspace of a command that works on one formed cluster (snapshot, restore, defrag):
    /// loaded with the state lock held, which the caller releases (`workspace.state.unlock()`),
    /// and its cluster (`soleCluster`). A backend of an unformed cluster is not part of it.
    /// `readOnly` (`--dry-run`): without the lock, nothing saved.
    func loadSoleCluster(readOnly: Bool = false) async throws -> (Workspace, ClusterPlan) {
        var builder = self
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: true, readOnly: readOnly)
        do {
            return (workspace, try workspace.soleCluster())
        } catch {
            workspace.state.unlock()
            throw error
        }
    }
}

extension Workspace {
    /// `--cluster NAME`, or the inventory's only cluster (as `env` does).
    public func soleCluster() throws -> ClusterPlan {
        if let name = scope.name {
            guard let cluster = plan.cluster(named: name) else { throw MusterError(.usage, "no cluster '\(name)' in \(inventoryPath)") }
            return cluster
        }
        guard plan.clusters.count == 1, let only = plan.clusters.first else {
            throw MusterError(.usage, "\(inventoryPath) has \(plan.clusters.count) clusters (\(plan.clusters.map(\.name).joined(separator: ", "))): name one with --cluster NAME")
        }
        return only
    }
}

/// `muster snapshot save`: a consistent snapshot streamed from one healthy voter (the leader
/// unless `member` names another) through its JSON gateway into a new file on the controller,
/// checked (etcd's digest, the bbolt pages for the revision), named, recorded, and old ones pruned.
public struct SnapshotSave: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    /// A member (by its host's name) to take it from instead of the leader.
    public var member: String?
    public var outDirectory: String?
    /// How many of muster's snapshots of this cluster to keep in the directory.
    public var keep = 5
    /// restic's `--keep-*` rules; nil: `keep` as `--keep-last`.
    public var retention: RetentionPolicy?
    /// `--out s3://...` (then `outDirectory` is not used).
    public var objectStore: ObjectStoreTarget?
    public var viaSSH = false
    /// Choose the source as the run would and list the step; write nothing.
    public var dryRun = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public struct Outcome: Sendable {
        public var cluster: String
        public var member: String
        public var snapshot: ClusterRecord.Snapshot
        /// etcd's cluster version in the file (`3.4.0`).
        public var clusterVersion: String?
        public var recorded: Bool
        public var pruned: [String]
        public var seconds: Double
    }

    /// The outcome; nil for a dry run.
    public func run() async throws -> Outcome? {
        let (workspace, cluster) = try await builder.loadSoleCluster(readOnly: dryRun)
        defer { workspace.state.unlock() }
        guard keep >= 1, retention?.isEmpty != true else { throw MusterError(.usage, "--keep must be at least 1") }
        let directory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: outDirectory)
        if let member, cluster.member(named: member) == nil {
            throw MusterError(.usage, cluster: cluster.name, "cluster '\(cluster.name)' has no member \(member) (members: \(cluster.members.map(\.name).joined(separator: ", ")))")
        }
        if !dryRun && objectStore == nil {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw MusterError(.input, "cannot create the snapshot directory \(directory): \(error.localizedDescription)")
            }
        }
        // Members that serve loopback only are reached through SSH tunnels: then the hosts are
        // connected (and their facts gathered) as every command connects them.
        let needsSSH = viaSSH || cluster.members.contains { $0.endpoint.contains("://127.0.0.1:") }
        if !needsSSH { try options.addressGuard(cluster.members.map(\.address)) }
        let (wanted, viaSSH, dryRun, progress) = (member, viaSSH, dryRun, progress)
        let (retention, objectStore) = (self.retention ?? RetentionPolicy(last: keep), self.objectStore)
        var options = options
        options.recordHostKeys = !dryRun
        return try await ClusterOperations.session(cluster, workspace: workspace, options: options, progress: progress,
                                                   connecting: needsSSH) { operations -> Outcome? in
            try await operations.withEndpoints(cluster, viaSSH: viaSSH) { endpoints -> Outcome? in
                let source = try await ClusterOperations.snapshotSource(cluster, endpoints: endpoints, wanted: wanted)
                let steps = SnapshotSteps.plan(cluster, source: source, destination: objectStore?.location.description ?? directory,
                                               retention: retention)
                let runner = StepRunner(command: "snapshot", progress: progress)
                if dryRun {
                    runner.list(steps)
                    return nil
                }
                var outcome: Outcome?
                try await runner.run(steps) { step in
                    guard case .save(let source, _, _) = step.action else {
                        throw DeployError(host: nil, cluster: cluster.name, step: step.name, "snapshot save has no step \(step.name)")
                    }
                    if let objectStore {
                        outcome = try await saveToObjectStore(cluster, workspace: workspace, endpoints: endpoints, from: source,
                                                              target: objectStore, retention: retention)
                    } else {
                        outcome = try await operations.takeSnapshot(cluster, endpoints: endpoints, from: source, into: directory,
                                                                    retention: retention, state: workspace.state)
                    }
                }
                return outcome
            }
        }
    }
}

/// `muster snapshot list`.
public enum SnapshotListing {
    public struct Result: Sendable {
        public var cluster: String
        public var directory: String
        public var entries: [SnapshotCatalog.Entry]
        /// The cluster's present incarnation, nil when it has none on record.
        public var incarnation: String?
    }

    public static func run(builder: PlanBuilder, outDirectory: String?) throws -> Result {
        var builder = builder
        builder.includeBackendOfUnformedCluster = false
        let workspace = try builder.build()
        let cluster = try workspace.soleCluster()
        let directory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: outDirectory)
        let record = try workspace.state.clusterRecord(cluster.name)
        return Result(cluster: cluster.name, directory: directory,
                      entries: SnapshotCatalog.list(cluster: cluster.name, directory: directory, record: record),
                      incarnation: try workspace.state.incarnation(of: cluster.name))
    }
}
