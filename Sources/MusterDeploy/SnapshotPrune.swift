import Foundation
import MusterBasics
import MusterObjectStore
import MusterWorkspace

/// `muster snapshot list --out s3://...`: muster-named snapshots of the cluster in the bucket, with
/// their metadata; contacts no host.
public enum ObjectStoreListing {
    public struct Result: Sendable {
        public var cluster: String
        public var location: String
        public var snapshots: [ObjectSnapshot]
        public var state: String?
        public var incarnation: String?
    }

    public static func run(builder: PlanBuilder, target: ObjectStoreTarget) async throws -> Result {
        var builder = builder
        builder.includeBackendOfUnformedCluster = false
        let prepared = builder
        let workspace = try await offPool { try prepared.build() }
        let cluster = try workspace.soleCluster()
        let snapshots: [ObjectSnapshot]
        do { snapshots = try await ObjectStorePruning.list(cluster: cluster.name, target: target) } catch let error as ObjectStoreError {
            throw error.musterError(cluster: cluster.name, step: "list")
        }
        return Result(cluster: cluster.name, location: target.location.description, snapshots: snapshots,
                      state: try workspace.state.identity()?.id, incarnation: try workspace.state.incarnation(of: cluster.name))
    }
}

/// `muster snapshot prune`: retention alone, in a directory or a bucket, `--dry-run` to only say.
public struct SnapshotPrune: Sendable {
    public var builder: PlanBuilder
    public var policy: RetentionPolicy
    public var outDirectory: String?
    public var objectStore: ObjectStoreTarget?
    public var dryRun = false
    public var progress: Progress

    public init(builder: PlanBuilder, policy: RetentionPolicy, progress: Progress) {
        self.builder = builder
        self.policy = policy
        self.progress = progress
    }

    public struct Outcome: Sendable {
        public var cluster: String
        public var location: String
        /// Kept, newest first, with the rules that keep each (`last`, `daily`, ...).
        public var kept: [(name: String, rules: [RetentionPolicy.Rule])]
        public var removed: [String]
        /// muster-named snapshots left alone: another state's or cluster's, or not recorded.
        public var untouched: [String]
        public var dryRun: Bool
    }

    public func run() async throws -> Outcome {
        guard !policy.isEmpty else { throw MusterError(.usage, "no --keep-* rule given: prune would keep nothing") }
        var builder = self.builder
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: true)
        defer { workspace.state.unlock() }
        let cluster = try workspace.soleCluster()
        let record = try workspace.state.clusterRecord(cluster.name)
        let outcome: Outcome
        if let objectStore {
            let result: ObjectStorePruning.Result
            do {
                result = try await ObjectStorePruning.prune(cluster: cluster.name, target: objectStore, state: try workspace.state.identity()?.id,
                                                            policy: policy, sparing: nil, dryRun: dryRun, progress: progress)
            } catch let error as ObjectStoreError { throw error.musterError(cluster: cluster.name, step: "prune") }
            outcome = Outcome(cluster: cluster.name, location: objectStore.location.description,
                              kept: result.kept.map { ($0.snapshot.location.description, $0.rules) },
                              removed: result.removed.map(\.location.description), untouched: result.foreign.map(\.location.description), dryRun: dryRun)
        } else {
            let directory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: outDirectory)
            // As `snapshot save` prunes: with a record only recorded files, without one no name dated in the future.
            let soon = Date().addingTimeInterval(300)
            let all = SnapshotCatalog.list(cluster: cluster.name, directory: directory, record: record)
            let ours = all.filter { record == nil ? $0.takenAt <= soon : $0.recorded != nil }
            let decision = policy.apply(ours) { $0.takenAt }
            var removed: [String] = []
            for entry in decision.removed {
                if !dryRun {
                    guard unlink(entry.path) == 0 else {
                        progress.note("cannot remove old snapshot \(entry.path): \(String(cString: strerror(errno)))")
                        continue
                    }
                }
                removed.append(entry.path)
            }
            outcome = Outcome(cluster: cluster.name, location: directory, kept: decision.kept.map { ($0.item.path, $0.rules) },
                              removed: removed, untouched: all.filter { entry in !ours.contains { $0.path == entry.path } }.map(\.path), dryRun: dryRun)
        }
        if !dryRun, record != nil, !outcome.removed.isEmpty {
            let removed = outcome.removed
            _ = try workspace.state.records.update(cluster.name) { record in
                record?.snapshots.removeAll { removed.contains($0.file) }
            }
        }
        return outcome
    }
}
