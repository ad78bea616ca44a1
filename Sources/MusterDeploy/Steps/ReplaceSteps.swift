import Foundation
import MusterPlan

/// `muster replace`'s steps: the member leaves, its data goes aside, it joins again empty. Needs
/// no facts: the refusals (every other voter healthy) come before the first step.
enum ReplaceSteps {
    /// `removal` is the member as the record knows it (its current ID and peer URL); `target` as
    /// the inventory plans it.
    static func plan(_ target: MemberPlan, removal: RemovalPlan, in cluster: ClusterPlan, backup: Bool, wipeData: Bool) -> [Step] {
        var steps: [Step] = []
        if backup {
            steps.append(Step(cluster: cluster.name, action: .backup(voters: cluster.members.filter { $0.name != target.name })))
        }
        steps.append(Step(cluster: cluster.name, action: .remove(removal), after: ["replace.after-remove"]))
        // Once removed, the member is planned again from the record: one that joins.
        for action: Step.Action in [.moveDataAside(target, wipe: wipeData), .writeFiles(target), .join(target), .waitHealthy] {
            steps.append(Step(cluster: cluster.name, action: action))
        }
        return steps
    }
}
