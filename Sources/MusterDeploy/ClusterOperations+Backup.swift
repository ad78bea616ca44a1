import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

extension ClusterOperations {
    /// The backup before muster restarts or reconfigures a running cluster: a snapshot from its
    /// leader into the state dir's `snapshots/before-change/`, rotated by its own count, never by
    /// `snapshot save --keep`. Without one the change does not happen.
    func backup(_ cluster: ClusterPlan, voters: [MemberPlan], state: LocalState) async throws -> String {
        let directory = SnapshotCatalog.beforeChangeDirectory(stateDirectory: state.directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let running = ClusterPlan(copying: cluster, members: voters)
            let take: (String?) async throws -> SnapshotSave.Outcome = { wanted in
                try await withEndpoints(running) { endpoints in
                    let source = try await Self.snapshotSource(running, endpoints: endpoints, wanted: wanted)
                    return try await takeSnapshot(running, endpoints: endpoints, from: source, into: directory,
                                                  retention: RetentionPolicy(last: SnapshotCatalog.beforeChangeKept), state: state)
                }
            }
            let outcome: SnapshotSave.Outcome
            do {
                outcome = try await take(nil)
            } catch {
                // No leader among those muster can reach: any healthy voter gives the same data.
                outcome = try await take(voters.first?.name)
            }
            progress.note("cluster \(cluster.name): backup before changing it: \(outcome.snapshot.file)")
            return outcome.snapshot.file
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "backup", kind: .refused,
                              "cluster '\(cluster.name)': no snapshot could be taken before restarting or reconfiguring it, so nothing was changed: \(error). --no-backup goes ahead without one")
        }
    }
}
