import Foundation
import MusterPlan

/// `muster defrag`'s steps: one member after the other in `order` (the leader last, as the
/// facts say), each with the boundary earlier tests cut at after it. The refusals (a member
/// down or unhealthy) come before the first step.
enum DefragSteps {
    static func plan(_ cluster: ClusterPlan, order: [MemberPlan]) -> [Step] {
        order.map { Step(cluster: cluster.name, action: .defragment($0), after: ["defrag.between-members"]) }
    }
}
