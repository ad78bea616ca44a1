import Foundation
import MusterPlan

/// `muster snapshot save`'s one step, from the member the facts chose (the leader, or the one
/// named), so that `--dry-run` names the source the run then streams from.
enum SnapshotSteps {
    static func plan(_ cluster: ClusterPlan, source: MemberPlan, directory: String, keep: Int) -> [Step] {
        [Step(cluster: cluster.name, action: .save(source, directory: directory, keep: keep))]
    }
}
