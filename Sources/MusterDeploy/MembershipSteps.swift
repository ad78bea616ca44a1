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
            let removals = cluster.removals.flatMap { removal in
                ["cluster \(cluster.name): move leadership away from \(removal.name) if it leads",
                 "cluster \(cluster.name): remove \(removal.name) (\(EtcdIDs.hex(removal.id))), then stop and disable it (needs --remove-members)"]
            }
            return joins + removals
        }
    }

    /// Refuses, before anything is contacted, removals nobody asked for and a shrink to one
    /// member without `--force`.
    static func refuseUnasked(_ plan: Plan, removeMembers: Bool, force: Bool, dryRun: Bool) throws {
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
