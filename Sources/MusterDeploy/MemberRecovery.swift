import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterWorkspace

/// `muster restore --from-member HOST`: a cluster that lost quorum, rebuilt from the database of
/// a member that survived (etcd's disaster-recovery guide: its `member/snap/db`, restored with
/// `--skip-hash-check`), when that database is fresher than the last snapshot.
///
/// Refused, before anything changes, while a majority answers healthy (the cluster can take a
/// snapshot itself) unless `force`. Then that member is stopped (its database must not change
/// while it is copied), the database is copied to the controller
/// (`STATE/snapshots/recovered/CLUSTER-from-HOST-STAMP.db`, mode 0600, kept), and every member is
/// restored from it as from a snapshot, old data dirs moved aside as `restore` does.
public struct MemberRecovery: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    /// The surviving member, by its host's name (or its member name).
    public var survivor: String
    public var force = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress, survivor: String) {
        self.builder = builder
        self.options = options
        self.progress = progress
        self.survivor = survivor
    }

    public func run() async throws -> Restore.Outcome? {
        let copy = try await copySurvivorsDatabase()
        var restore = Restore(builder: builder, options: options, progress: progress, snapshot: copy)
        restore.rawDatabase = true
        // The refusal of a healthy cluster was made above, against the survivor's view.
        restore.force = true
        return try await restore.run()
    }

    /// Refuses a cluster with quorum (unless `force`), stops the survivor, copies its database.
    private func copySurvivorsDatabase() async throws -> String {
        let (workspace, cluster) = try await builder.loadSoleCluster()
        defer { workspace.state.unlock() }
        guard let member = cluster.members.first(where: { $0.host == survivor || $0.name == survivor }) else {
            throw MusterError(.usage, cluster: cluster.name, "cluster '\(cluster.name)' has no member on \(survivor) (members: \(cluster.members.map(\.host).joined(separator: ", ")))")
        }
        let directory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: nil) + "/recovered"
        let (force, progress) = (force, progress)
        return try await ClusterOperations.session(cluster, workspace: workspace, options: options, progress: progress) { operations in
            let healthy = try await operations.healthyMembers(cluster)
            if healthy.count > cluster.members.count / 2 && !force {
                throw DeployError(host: nil, cluster: cluster.name, step: "restore", kind: .refused,
                                  "cluster '\(cluster.name)' has quorum (\(healthy.map(\.name).joined(separator: ", ")) of \(cluster.members.count) healthy): take a snapshot (`muster snapshot save`) and restore from it, or `muster replace` the lost members; nothing was changed. Pass --force to rebuild it from \(member.name)'s database anyway")
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw MusterError(.input, "cannot create \(directory): \(error.localizedDescription)")
            }
            progress.host(member.host, "recover", "\(cluster.name): stopping \(member.name) so that its database holds still")
            _ = try await operations.stop(member, wipe: false)
            let database = member.paths.data + "/member/snap/db"
            // Each run keeps its own copy: named like a snapshot, by the next free second.
            let partial = "\(directory)/.\(cluster.name)-from-\(member.name).\(UUID().uuidString).partial"
            let bytes: Int64, path: String
            do {
                defer { unlink(partial) }
                bytes = try await operations.fleet.session(member.host).download(database, to: partial, privileged: true)
                path = try SnapshotCatalog.linkUnderFreeName(partial, from: Date()) {
                    "\(directory)/\(cluster.name)-from-\(member.name)-\(SnapshotCatalog.stamp($0)).db"
                }.path
            } catch {
                throw DeployError(host: member.host, cluster: cluster.name, step: "recover", "cannot copy \(database): \(error)")
            }
            progress.host(member.host, "recover", "\(cluster.name): \(database) copied to \(path) (\(bytes) bytes)")
            return path
        }
    }
}
