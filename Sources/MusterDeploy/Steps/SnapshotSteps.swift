import Foundation
import MusterPlan

/// `muster snapshot save`'s one step, from the member the facts chose (the leader, or the one
/// named), so that `--dry-run` names the source the run then streams from.
enum SnapshotSteps {
    /// `destination`: the directory, or the `s3://` location, as the operator reads it.
    static func plan(_ cluster: ClusterPlan, source: MemberPlan, destination: String, retention: RetentionPolicy) -> [Step] {
        [Step(cluster: cluster.name, action: .save(source, into: destination, retention: retention))]
    }
}
