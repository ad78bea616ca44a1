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
    func loadSoleCluster() async throws -> (Workspace, ClusterPlan) {
        var builder = self
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: true)
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

    public func run() async throws -> Outcome {
        let (workspace, cluster) = try await builder.loadSoleCluster()
        defer { workspace.state.unlock() }
        guard keep >= 1, retention?.isEmpty != true else { throw MusterError(.usage, "--keep must be at least 1") }
        let directory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: outDirectory)
        if let member, cluster.member(named: member) == nil {
            throw MusterError(.usage, cluster: cluster.name, "cluster '\(cluster.name)' has no member \(member) (members: \(cluster.members.map(\.name).joined(separator: ", ")))")
        }
        do {
            if objectStore == nil {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
        } catch {
            throw MusterError(.input, "cannot create the snapshot directory \(directory): \(error.localizedDescription)")
        }
        let tls = try ClusterCertificates.clientTLS(for: cluster, stateDirectory: workspace.state.directory)
        let needsSSH = viaSSH || cluster.members.contains { $0.endpoint.contains("://127.0.0.1:") }
        var fleet: Fleet?
        if needsSSH {
            let hosts = cluster.members.map(\.host).uniqued().compactMap(workspace.inventory.host(named:))
            try workspace.checkIdentityFiles(of: hosts)
            fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        } else {
            try options.addressGuard(cluster.members.map(\.address))
        }
        let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: viaSSH, tls: tls)
        do {
            let outcome = if let objectStore {
                try await saveToObjectStore(cluster, workspace: workspace, endpoints: endpoints, target: objectStore)
            } else {
                try await save(cluster, workspace: workspace, endpoints: endpoints, directory: directory)
            }
            await endpoints.close()
            await fleet?.close()
            return outcome
        } catch {
            await endpoints.close()
            await fleet?.close()
            throw error
        }
    }

    /// Streams, checks, names, records and prunes one snapshot; used by `snapshot save` and by the
    /// backup `up` takes before it restarts or reconfigures a running cluster.
    func save(_ cluster: ClusterPlan, workspace: Workspace, endpoints: Endpoints, directory: String) async throws -> Outcome {
        let source = try await Self.source(cluster, endpoints: endpoints, wanted: member)
        let takenAt = Date()
        let partial = "\(directory)/.\(cluster.name)-snapshot.\(getpid()).partial"
        unlink(partial)
        progress.host(source.host, "snapshot", "\(cluster.name): streaming from \(source.name)")
        let download: SnapshotDownload
        do {
            download = try await endpoints.client(for: source, timeout: 10).saveSnapshot(to: partial)
        } catch {
            throw DeployError(host: source.host, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        let facts: SnapshotFileFacts
        do {
            facts = try await offPool { try SnapshotFile.inspect(partial) }
            guard facts.hashMatches else {
                throw SnapshotError("\(partial): the database's sha256 does not match the digest at its end")
            }
        } catch {
            unlink(partial)
            throw DeployError(host: source.host, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        // link + unlink: never replaces a file of the same name. Two snapshots of one revision
        // within a second (a re-run right after a cut one) take the next free second's name.
        var stamp = takenAt, path = "", linked = false, reason = ""
        for _ in 0..<10 {
            path = directory + "/" + SnapshotCatalog.fileName(cluster: cluster.name, revision: facts.revision, takenAt: stamp)
            if link(partial, path) == 0 { linked = true; break }
            reason = String(cString: strerror(errno))
            guard errno == EEXIST else { break }
            stamp = stamp.addingTimeInterval(1)
        }
        guard linked else {
            unlink(partial)
            throw DeployError(host: nil, cluster: cluster.name, step: "snapshot", "cannot name the snapshot \(path): \(reason)")
        }
        unlink(partial)
        let rate = String(format: "%.2f s, %.1f MiB/s", download.seconds, Double(download.bytes) / 1_048_576 / max(download.seconds, 0.001))
        progress.host(source.host, "snapshot", "\(cluster.name): \(download.bytes) bytes at revision \(facts.revision) (\(rate))")
        var record = try workspace.state.clusterRecord(cluster.name)
        let entry = ClusterRecord.Snapshot(file: path, revision: facts.revision, sha256: facts.fileSHA256,
                                           size: Int(facts.size), takenAt: stamp, clusterID: record?.clusterID,
                                           incarnation: record?.incarnation)
        record?.snapshots.append(entry)
        let pruned = try prune(cluster: cluster.name, directory: directory, record: &record, saved: path)
        if let record { try workspace.state.save(record) } else {
            progress.note("cluster \(cluster.name) has no record yet (muster records a cluster at its first verified `up`): the snapshot is not recorded")
        }
        return Outcome(cluster: cluster.name, member: source.name, snapshot: entry, clusterVersion: facts.clusterVersion,
                       recorded: record != nil, pruned: pruned, seconds: download.seconds)
    }

    /// Removes all but the newest `keep` of muster's files for `cluster` (and their records),
    /// never `saved`, the one just taken. A name alone proves nothing (anyone who can write the
    /// directory can plant `CLUSTER-1-29990101T000000Z.db` to push real snapshots out): with a
    /// record, only recorded snapshots are pruned; without one, no name dated in the future counts.
    private func prune(cluster: String, directory: String, record: inout ClusterRecord?, saved: String) throws -> [String] {
        let soon = Date().addingTimeInterval(300)
        let entries = SnapshotCatalog.list(cluster: cluster, directory: directory, record: record).filter { entry in
            record == nil ? entry.takenAt <= soon : entry.recorded != nil
        }
        let doomed = (retention ?? RetentionPolicy(last: keep)).apply(entries) { $0.takenAt }.removed.filter { $0.path != saved }
        var pruned: [String] = []
        for entry in doomed {
            guard unlink(entry.path) == 0 else {
                progress.note("cannot remove old snapshot \(entry.path): \(String(cString: strerror(errno)))")
                continue
            }
            pruned.append(entry.path)
            progress.note("pruned \(entry.path)")
        }
        record?.snapshots.removeAll { pruned.contains($0.file) }
        return pruned
    }

    /// The member to stream from: `wanted`, or the leader; either must be a healthy voter.
    static func source(_ cluster: ClusterPlan, endpoints: Endpoints, wanted: String?) async throws -> MemberPlan {
        var statuses: [(MemberPlan, EndpointStatus)] = []
        var problems: [String] = []
        for member in cluster.members where wanted == nil || member.name == wanted {
            do {
                statuses.append((member, try await endpoints.client(for: member).status()))
            } catch {
                problems.append("\(member.name): \(error)")
            }
        }
        let chosen: (MemberPlan, EndpointStatus)?
        if wanted != nil {
            chosen = statuses.first
        } else {
            let leader = statuses.first { $0.1.leader != 0 }?.1.leader
            chosen = statuses.first { $0.1.header.memberID == leader }
            if chosen == nil { problems.append("no member answering names a leader that answers") }
        }
        guard let (member, status) = chosen else {
            throw DeployError(host: nil, cluster: cluster.name, step: "snapshot",
                              "no healthy voter of cluster '\(cluster.name)' to take a snapshot from: " + problems.joined(separator: "; "))
        }
        guard !status.isLearner else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "snapshot", kind: .refused,
                              "\(member.name) is a learner (etcd 3.4 learners refuse the snapshot stream): name a voter with --member")
        }
        let health = try? await endpoints.client(for: member).health()
        guard health?.healthy == true else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "snapshot",
                              "\(member.name) is not healthy (\(health?.reason ?? "no answer on /health")): a snapshot comes from a healthy voter")
        }
        return member
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
