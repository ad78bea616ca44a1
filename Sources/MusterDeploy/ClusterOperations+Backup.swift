import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

extension ClusterOperations {
    /// The backup before muster restarts or reconfigures a running cluster: a snapshot from its
    /// leader into the state dir's `snapshots/before-change/`, rotated by its own count, never by
    /// `snapshot save --keep`. Without one the change does not happen.
    func backup(_ cluster: ClusterPlan, voters: [MemberPlan], workspace: Workspace, builder: PlanBuilder) async throws -> String {
        let operations = self
        var save = SnapshotSave(builder: builder, options: options, progress: progress)
        save.keep = SnapshotCatalog.beforeChangeKept
        let directory = SnapshotCatalog.beforeChangeDirectory(stateDirectory: workspace.state.directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let running = ClusterPlan(copying: cluster, members: voters)
            let outcome: SnapshotSave.Outcome
            do {
                outcome = try await operations.withEndpoints(running) { endpoints in
                    try await save.save(running, workspace: workspace, endpoints: endpoints, directory: directory)
                }
            } catch {
                // No leader among those muster can reach: any healthy voter gives the same data.
                var fromMember = save
                fromMember.member = voters.first?.name
                outcome = try await operations.withEndpoints(running) { endpoints in
                    try await fromMember.save(running, workspace: workspace, endpoints: endpoints, directory: directory)
                }
            }
            progress.note("cluster \(cluster.name): backup before changing it: \(outcome.snapshot.file)")
            return outcome.snapshot.file
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "backup", kind: .refused,
                              "cluster '\(cluster.name)': no snapshot could be taken before restarting or reconfiguring it, so nothing was changed: \(error). --no-backup goes ahead without one")
        }
    }

}
