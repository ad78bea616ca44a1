import Foundation
import MusterBasics
import MusterPlan

/// `muster restore`'s steps: what the restore needs goes to the hosts while the cluster still
/// runs, then every member stops, each one's data is restored on its host, their conf.yml are
/// written for the restored founding, and they start. Needs no facts: the refusals (a damaged or
/// too new file, a healthy cluster without `--force`) come before the first step.
enum RestoreSteps {
    /// `cluster` as planned now (the members to stop); `restored` as the restore founds it again
    /// (`Workspace.replanned(restoring:token:)`: its IDs and initial-cluster). The boundaries
    /// earlier tests cut at stay where they were: after the last stop, after the first member's
    /// data, before the first start.
    static func plan(_ cluster: ClusterPlan, restored: ClusterPlan, snapshot: String, revision: Int64, tool: String) -> [Step] {
        var steps = [Step(cluster: cluster.name, action: .ship(tool: tool, snapshot: snapshot, hosts: cluster.members.map(\.host).uniqued()))]
        for (index, member) in cluster.members.enumerated() {
            steps.append(Step(cluster: cluster.name, action: .stop(member),
                              after: index == cluster.members.count - 1 ? ["restore.after-stop"] : []))
        }
        for (index, member) in restored.members.enumerated() {
            steps.append(Step(cluster: cluster.name, action: .restoreData(member, revision: revision),
                              after: index == 0 ? ["restore.after-first-member"] : []))
        }
        steps.append(Step(cluster: cluster.name, action: .writeConfigs(restored.members), after: ["restore.before-start"]))
        for member in restored.members { steps.append(Step(cluster: cluster.name, action: .start(member))) }
        steps.append(Step(cluster: cluster.name, action: .waitHealthy))
        return steps
    }
}
