import Foundation
import MusterBasics
import MusterPlan

/// The membership changes a plan makes, as steps: what `--dry-run` prints and what the safety
/// rules look at before any host is contacted.
enum MembershipSteps {
    static func describe(_ plan: Plan) -> [String] {
        plan.clusters.flatMap { cluster -> [String] in
            let joins = cluster.members.filter { $0.join?.isNew == true }.flatMap { member in
                ["cluster \(cluster.name): add learner \(member.name) (\(member.peerURL))", "cluster \(cluster.name): start \(member.name)",
                 "cluster \(cluster.name): promote \(member.name) once in sync"]
            }
            let removals = cluster.removals.filter { !$0.beforeJoins }.flatMap { removal in
                ["cluster \(cluster.name): move leadership away from \(removal.name) if it leads",
                 "cluster \(cluster.name): remove \(removal.name) (\(EtcdIDs.hex(removal.id))), then stop and disable it (needs --remove-members)"]
            }
            // Gone already: removed first, then the newcomers added (etcd's guide).
            let departed = cluster.removals.filter(\.beforeJoins).map { removal in
                "cluster \(cluster.name): remove \(removal.name) (\(EtcdIDs.hex(removal.id))) first: it is gone (host unreachable or member stopped); stopped where its host answers (needs --remove-members)"
            }
            let readdressed = cluster.members.filter { $0.formerPeerURL != nil }.map { member in
                "cluster \(cluster.name): update \(member.name) peer URLs \(member.formerPeerURL ?? "") -> \(member.peerURL), then restart it on its new address"
            }
            return readdressed + departed + joins + removals
        }
    }

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
