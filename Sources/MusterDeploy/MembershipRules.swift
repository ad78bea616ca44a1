import Foundation
import MusterBasics
import MusterPlan

/// The membership rules a plan must pass before any host is contacted. (The changes themselves
/// are steps: `UpSteps`.)
enum MembershipRules {
    /// Refuses, before anything is contacted, removals nobody asked for and a shrink to one
    /// member without `--force`.
    static func refuseUnasked(_ plan: Plan, removeMembers: Bool, force: Bool, dryRun: Bool) throws {
        // One membership change at a time: a newcomer's initial-cluster and a removal name
        // members by the peer URLs the cluster has now.
        for cluster in plan.clusters {
            let readdressed = cluster.members.filter { $0.formerPeerURL != nil }.map(\.name)
            let others = cluster.members.filter { $0.join?.isNew == true }.map(\.name) + cluster.removals.map(\.name)
            if !readdressed.isEmpty && !others.isEmpty {
                throw DeployError(host: nil, cluster: cluster.name, step: "membership", kind: .refused,
                                  "cluster '\(cluster.name)': the address of \(readdressed.joined(separator: ", ")) changed while \(others.joined(separator: ", ")) join(s) or leave(s): one membership change at a time; nothing was changed on any host. Change the addresses first (with the members as they are), then the members")
            }
        }
        for cluster in plan.clusters where !cluster.removals.isEmpty {
            let names = cluster.removals.map(\.name).joined(separator: ", ")
            if !removeMembers && !dryRun {
                throw DeployError(host: nil, cluster: cluster.name, step: "membership", kind: .refused,
                                  "cluster '\(cluster.name)' has member(s) the inventory no longer lists: \(names). Nothing was changed on any host; run `muster up --remove-members` to remove them (their data is kept unless --wipe-data), or list them again")
            }
            if cluster.members.count == 1 && !force {
                throw DeployError(host: nil, cluster: cluster.name, step: "membership", kind: .refused,
                                  "cluster '\(cluster.name)': removing \(names) leaves a single member, which etcd calls unsafe (a 2-member cluster loses quorum if the removal fails half-way); nothing was changed. --force does it anyway")
            }
        }
    }
}
