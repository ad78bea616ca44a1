import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan

/// A changed member binary is a version upgrade, never a silent swap: checked before anything is
/// written (every member running and healthy, one minor version at a time, no downgrade), then
/// rolled one member at a time with the leader last, and done when the cluster version moved.
extension ClusterOperations {
    /// The version of the binary a running member runs, from muster's install name `etcd-VERSION`.
    func runningVersion(_ member: MemberPlan) -> String? {
        guard let exe = facts[member.host]?.members[member.cluster]?.runningExe else { return nil }
        let name = (exe.split(separator: " ").first.map(String.init) ?? exe as String) as NSString
        let file = name.lastPathComponent
        return file.hasPrefix("etcd-") ? String(file.dropFirst("etcd-".count)) : nil
    }

    /// Refuses, naming the rule, the member and the way on, an upgrade that could break the
    /// cluster (`EtcdUpgradeRules.table`); nothing is changed. `stateDirectory` is where a
    /// downgrade's refusal looks for a snapshot restore accepts; `hostFacts` gathers what the
    /// rules of this step need from the hosts (v2store checks, snapshot indices), and runs only
    /// once the version rules passed.
    func refuseUnsafeUpgrade(_ cluster: ClusterPlan, stateDirectory: String? = nil,
                             hostFacts: ((inout UpgradeFacts) async throws -> Void)? = nil) async throws {
        let upgrading = runningMembers(cluster).filter(runsAnotherBinary)
        guard !upgrading.isEmpty, let target = EtcdVersion(cluster.memberVersion) else { return }
        let refuse = { (reason: String) in
            DeployError(host: nil, cluster: cluster.name, step: "upgrade", kind: .refused,
                        "cluster '\(cluster.name)': the member binary changes to etcd \(cluster.memberVersion), refused: \(reason); nothing was changed")
        }
        var facts = UpgradeFacts(cluster: cluster.name, target: target,
                                 running: upgrading.compactMap { member in runningVersion(member).flatMap(EtcdVersion.init).map { (member.name, $0) } })
        func refuseFirst(_ refusals: [UpgradeRefusal]) throws {
            guard var first = refusals.first else { return }
            if first.rule == "no-downgrade" {
                let restorable = stateDirectory.flatMap {
                    SnapshotCatalog.newestRestorable(cluster: cluster.name, stateDirectory: $0, memberVersion: cluster.memberVersion)
                }
                first.wayOn = restorable.map { "`muster restore --from \($0)` (the newest snapshot of this cluster that etcd \(cluster.memberVersion) members can restore) brings back the data as it was then" }
                    ?? "muster has no snapshot of this cluster taken on etcd \(target.line) or older that etcd \(cluster.memberVersion) members could restore (a snapshot keeps the minor it was taken on)"
            }
            let others = Set(refusals.map(\.member)).subtracting([first.member]).sorted()
            throw refuse("\(first)" + (others.isEmpty ? "" : " (likewise \(others.joined(separator: ", ")))"))
        }
        try refuseFirst(EtcdUpgradeRules.versionRefusals(facts))
        let down = cluster.members.filter { !isRunning($0) }
        guard down.isEmpty else {
            throw refuse("\(down.map(\.name).joined(separator: ", ")) not running: every member must be up and healthy first")
        }
        if let unhealthy = try await firstUnhealthy(cluster.members, of: cluster) { throw refuse("\(unhealthy.name) is not healthy") }
        try await hostFacts?(&facts)
        try refuseFirst(EtcdUpgradeRules.refusals(facts))
    }

    /// The members to restart with the leader last, and leadership handed to an already
    /// restarted member before the leader stops.
    func leaderLast(_ members: [MemberPlan], cluster: ClusterPlan) async -> (order: [MemberPlan], leader: MemberPlan?) {
        let leader: MemberPlan? = try? await withEndpoints(cluster) { endpoints in
            for member in cluster.members {
                if let status = try? await endpoints.client(for: member, timeout: 3).status(), status.isLeader { return member }
            }
            return nil
        }
        guard let leader, members.contains(where: { $0.name == leader.name }) else { return (members, nil) }
        return (members.filter { $0.name != leader.name } + [leader], leader)
    }

    /// Hands leadership from `leader` to `target` before the leader stops.
    func moveLeadership(from leader: MemberPlan, to target: MemberPlan, cluster: ClusterPlan) async {
        guard let targetID = target.memberID else { return }
        progress.host(leader.host, "upgrade", "\(cluster.name): moving leadership from \(leader.name) to \(target.name)")
        _ = try? await withEndpoints(cluster) { endpoints in
            let client = endpoints.client(for: leader, timeout: 10)
            // The gateway wants the ID etcd uses now, which the member list has by name.
            let id = (try? await client.memberList().members.first { $0.name == target.name }?.id) ?? targetID
            try await client.moveLeader(to: id)
            progress.host(leader.host, "upgrade", "\(cluster.name): leadership moved to \(target.name)")
        }
    }

    /// Waits (bounded, 60 s) until every member reports the new server version and the cluster
    /// version has moved to the new minor (the leader raises it a few seconds after the last).
    func waitForClusterVersion(_ cluster: ClusterPlan) async throws {
        guard let wanted = EtcdVersion(cluster.memberVersion) else { return }
        try await withEndpoints(cluster) { endpoints in
            var last = ""
            let deadline = Deadline(seconds: 60)
            repeat {
                if let version = try? await endpoints.client(for: cluster.members[0], timeout: 3).version() {
                    last = version.cluster
                    // `etcdcluster` is MAJOR.MINOR.0: the line is what moves.
                    if let current = EtcdVersion(version.cluster), (current.major, current.minor) >= (wanted.major, wanted.minor) {
                        progress.note("cluster \(cluster.name): cluster version \(version.cluster)")
                        return
                    }
                }
            } while try await deadline.sleep(.milliseconds(250))
            throw DeployError(host: nil, cluster: cluster.name, step: "upgrade",
                              "cluster '\(cluster.name)': every member runs etcd \(cluster.memberVersion) but the cluster version is still \(last) after \(deadline.text)")
        }
    }
}
