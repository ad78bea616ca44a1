import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterWorkspace

/// Runtime reconfiguration, one member at a time and always through a learner: a learner does
/// not vote, so adding one never changes the quorum; it becomes a voter only once etcd says it
/// has caught up.
extension ClusterOperations {
    /// Adds `member` as a learner (unless an earlier, cut run already did), starts it, waits
    /// (bounded) until etcd lets it be promoted, promotes it. Returns it with its ID.
    func join(_ member: MemberPlan, cluster: ClusterPlan) async throws -> MemberPlan {
        let voters = runningMembers(cluster)
        guard let via = voters.first else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "join", kind: .refused,
                              "cluster '\(cluster.name)': no member is running to add \(member.name) through")
        }
        return try await withEndpoints(cluster) { endpoints in
            try await join(member, cluster: cluster, voters: voters, via: via, endpoints: endpoints)
        }
    }

    private func join(_ member: MemberPlan, cluster: ClusterPlan, voters: [MemberPlan], via: MemberPlan,
                      endpoints: Endpoints) async throws -> MemberPlan {
        let refuse = { (reason: String) in
            DeployError(host: member.host, cluster: cluster.name, step: "join", kind: .refused,
                        "cluster '\(cluster.name)': \(member.name) not added: \(reason); nothing was changed")
        }
        // Every voter must be healthy before the membership changes.
        if let unhealthy = try await firstUnhealthy(voters, of: cluster) { throw refuse("member \(unhealthy.name) is not healthy") }
        let client = endpoints.client(for: via, timeout: 10)
        let list = try await client.memberList().members
        let id: UInt64
        let here = facts[member.host]?.members[cluster.name]
        let dataOf = here?.hasData == true ? here?.marker.map { String($0.split(separator: " ").last ?? "") } : nil
        if let existing = list.first(where: { $0.peerURLs.contains(member.peerURL) }) {
            // A cut run added it already (and may have started it): carry on from there.
            if let dataOf, dataOf != existing.idHex {
                throw refuse("its data dir \(member.paths.data) holds member \(dataOf), but the cluster added it as \(existing.idHex): remove that learner (etcdctl member remove \(existing.idHex)) or move the data away")
            }
            progress.host(member.host, "join", "\(cluster.name): \(member.name) already added as \(existing.idHex)")
            id = existing.id
        } else {
            if let dataOf {
                throw refuse("its data dir \(member.paths.data) holds member \(dataOf), which the cluster does not have: move that data away first")
            }
            if let learner = list.first(where: \.isLearner) {
                throw refuse("learner \(learner.name.isEmpty ? learner.idHex : learner.name) is not promoted yet (one learner at a time)")
            }
            let expected = Set((member.join?.initialCluster ?? "").split(separator: ",").map { String($0.split(separator: "=").last ?? "") })
            let present = Set(list.flatMap(\.peerURLs) + [member.peerURL])
            guard expected == present else {
                throw refuse("the cluster's member list (\(list.map { $0.name }.joined(separator: ", "))) differs from muster's record; reconcile it by hand first")
            }
            try checkpoint("grow.before-add")
            let added = try await addLearner(member, cluster: cluster, client: client)
            id = added.member.id
            progress.host(member.host, "join", "\(cluster.name): \(member.name) added as learner \(added.member.idHex)")
        }
        var joining = member
        joining.memberID = id
        try checkpoint("grow.after-add")
        if !isRunning(member) {
            try await start(joining)
            try checkpoint("grow.after-start")
        }
        try await promote(joining, cluster: cluster, client: client)
        try checkpoint("grow.after-promote")
        return joining
    }

    private func addLearner(_ member: MemberPlan, cluster: ClusterPlan, client: EtcdClient) async throws -> MemberAddResponse {
        do {
            return try await whileEtcdSettles(cluster: cluster, what: "adding \(member.name) as a learner") { () async throws(EtcdClientError) in
                try await client.memberAdd(peerURLs: [member.peerURL], isLearner: true)
            }
        } catch let error as EtcdClientError {
            throw DeployError(host: member.host, cluster: cluster.name, step: "join",
                              "cluster '\(cluster.name)': adding \(member.name) as a learner failed: \(error)")
        }
    }

    /// etcd refuses a membership change while its members have been connected for less than
    /// 5 s ("unhealthy cluster", as right after a start): `change` retried, bounded (30 s).
    func whileEtcdSettles<T>(cluster: ClusterPlan, what: String, _ change: () async throws(EtcdClientError) -> T) async throws -> T {
        var lastError = ""
        let deadline = Deadline(seconds: 30)
        repeat {
            do {
                return try await change()
            } catch {
                lastError = error.message
                guard lastError.contains("unhealthy cluster") else { throw error }
            }
        } while try await deadline.sleep(.milliseconds(500))
        throw DeployError(host: nil, cluster: cluster.name, step: "membership", kind: .refused,
                          "cluster '\(cluster.name)': etcd refused \(what) for \(deadline.text): \(lastError)")
    }

    /// etcd refuses a promotion until the learner is in sync: retried, bounded (60 s).
    private func promote(_ member: MemberPlan, cluster: ClusterPlan, client: EtcdClient) async throws {
        guard let id = member.memberID else { return }
        var lastError = ""
        let deadline = Deadline(seconds: 60)
        repeat {
            do {
                try await client.memberPromote(id: id)
                progress.host(member.host, "promote", "\(cluster.name): \(member.name) is a voter")
                return
            } catch {
                lastError = error.message
                // Promoted already (a cut run got this far): etcd says "can only promote a
                // learner member", without the "which is in sync" of a learner not ready yet.
                if lastError.contains("not a learner")
                    || (lastError.contains("can only promote a learner member") && !lastError.contains("in sync")) {
                    progress.host(member.host, "promote", "\(cluster.name): \(member.name) was a voter already")
                    return
                }
            }
        } while try await deadline.sleep(.milliseconds(250))
        throw await failure(member, step: "promote", "learner \(member.name) was not in sync after \(deadline.text): \(lastError)")
    }
}

extension ClusterOperations {
    /// The safety rules of a membership change, checked before anything is written on any host
    /// (a newcomer's files included): every voter that stays is healthy (a member being removed
    /// may be down: that is how a member leaves an unreachable host) and no learner of another
    /// change is pending. With those, every step keeps a quorum of healthy voters: a newcomer
    /// votes only once etcd says it has caught up, and removals come after the newcomers.
    func refuseUnsafeMembershipChange(_ cluster: ClusterPlan) async throws {
        let joining = cluster.members.filter { $0.join?.isNew == true }
        guard !joining.isEmpty || !cluster.removals.isEmpty else { return }
        let change = (joining.map { "add \($0.name)" } + cluster.removals.map { "remove \($0.name)" }).joined(separator: ", ")
        let refuse = { (reason: String) in
            DeployError(host: nil, cluster: cluster.name, step: "membership", kind: .refused,
                        "cluster '\(cluster.name)': refused to \(change): \(reason); nothing was changed on any host")
        }
        let staying = cluster.members.filter { $0.join?.isNew != true }
        if let unhealthy = try await firstUnhealthy(staying, of: cluster) {
            throw refuse("member \(unhealthy.name) is not healthy (bring it back first: `muster up` with the membership unchanged starts a stopped member; or `muster replace` it)")
        }
        guard let via = staying.first else { return }
        let list = try await withEndpoints(cluster) { endpoints in try await endpoints.client(for: via, timeout: 5).memberList().members }
        // A newcomer's host holding data (a learner a cut run started) must hold that learner's.
        for member in joining {
            let here = facts[member.host]?.members[cluster.name]
            guard here?.hasData == true, let marker = here?.marker else { continue }
            let dataOf = String(marker.split(separator: " ").last ?? "")
            let added = list.first { $0.peerURLs.contains(member.peerURL) }
            if added?.idHex != dataOf {
                throw refuse("\(member.host): data dir \(member.paths.data) holds member \(dataOf), which the cluster does not have\(added.map { " (it added \(member.name) as \($0.idHex))" } ?? ""): move that data away first")
            }
        }
        // Newcomers join one at a time, each promoted before the next: one learner slot is all a
        // grow needs, and the line's limit (max-learners from 3.6, else 1) is what etcd enforces.
        let waiting = list.filter { learner in learner.isLearner && !joining.contains { learner.peerURLs.contains($0.peerURL) } }
        if waiting.count >= cluster.learnerLimit, let learner = waiting.first {
            throw refuse("learner \(learner.name.isEmpty ? learner.idHex : learner.name) (\(learner.peerURLs.joined(separator: ", "))) is not promoted yet: etcd \(cluster.memberVersion) takes \(cluster.learnerLimit) learner\(cluster.learnerLimit == 1 ? "" : "s") at a time (promote or remove it with etcdctl first)")
        }
    }

    /// Removes a member the inventory no longer lists: leadership moved away first if it leads,
    /// `member remove` through a remaining member, then the member stopped and disabled on its
    /// host (data kept unless `wipe`). Refused while a remaining voter is unhealthy.
    func remove(_ removal: RemovalPlan, cluster: ClusterPlan, wipe: Bool) async throws {
        let remaining = runningMembers(cluster).filter { $0.name != removal.name }
        guard let via = remaining.first else {
            throw DeployError(host: nil, cluster: cluster.name, step: "remove", kind: .refused,
                              "cluster '\(cluster.name)': no remaining member runs; \(removal.name) not removed")
        }
        // A member whose host did not answer is removed without it: no leadership to move
        // (it cannot lead the members muster reaches), nothing to stop.
        let reachable = removal.member.flatMap { fleet.sessions[$0.host] != nil ? $0 : nil }
        let narrowed = ClusterPlan(copying: cluster, members: remaining + [reachable].compactMap { $0 })
        try await withEndpoints(narrowed) { endpoints in
            try await remove(removal, leaving: reachable, cluster: cluster, remaining: remaining, via: via, endpoints: endpoints)
        }
        try checkpoint("shrink.after-remove")
        if let member = reachable {
            // Its private keys were credentials of the cluster (a peer's; on 3.4 a client's too; its gateway's),
            // and it is no member now: they leave its host (data stays unless `wipe`).
            try await stop(member, wipe: wipe, disable: true, deletingKeys: true)
            try checkpoint("shrink.after-stop")
        } else if let member = removal.member {
            progress.host(member.host, "remove", "\(cluster.name): host unreachable: \(removal.name) removed from the cluster but not stopped there (etcd refuses it if it comes back); stop and disable it there once the host is back, and delete its keys (\(member.paths.pkiDir)/*.key)")
        } else {
            progress.note("cluster \(cluster.name): host of \(removal.name) is not in the inventory; stop it there by hand")
        }
    }

    private func remove(_ removal: RemovalPlan, leaving reachable: MemberPlan?, cluster: ClusterPlan, remaining: [MemberPlan],
                        via: MemberPlan, endpoints: Endpoints) async throws {
        if let voter = try await firstUnhealthy(remaining, of: cluster) {
            throw DeployError(host: voter.host, cluster: cluster.name, step: "remove", kind: .refused,
                              "cluster '\(cluster.name)': \(removal.name) not removed: member \(voter.name) is not healthy; nothing was changed")
        }
        let client = endpoints.client(for: via, timeout: 10)
        let list = try await client.memberList().members
        if list.contains(where: { $0.id == removal.id }) {
            if let leaving = reachable, let status = try? await endpoints.client(for: leaving, timeout: 3).status(),
               status.leader == removal.id, let target = list.first(where: { $0.id != removal.id && !$0.isLearner }) {
                try await endpoints.client(for: leaving, timeout: 10).moveLeader(to: target.id)
                progress.host(leaving.host, "remove", "\(cluster.name): leadership moved to \(target.name)")
                try checkpoint("shrink.after-leader-move")
            }
            _ = try await whileEtcdSettles(cluster: cluster, what: "removing \(removal.name)") { () async throws(EtcdClientError) in
                try await client.memberRemove(id: removal.id)
            }
            progress.note("cluster \(cluster.name): member \(removal.name) (\(EtcdIDs.hex(removal.id))) removed")
        } else {
            progress.note("cluster \(cluster.name): member \(removal.name) was removed already")
        }
    }
}

extension ClusterOperations {
    /// A member whose address changed: its peer URLs updated in place through another member
    /// (`member update`: same ID, same data), then the member restarted on its new files and
    /// waited for. Refused while another member is unhealthy. A cut run finds the URL updated
    /// already and only restarts.
    func readdress(_ member: MemberPlan, cluster: ClusterPlan) async throws {
        guard let former = member.formerPeerURL, let id = member.memberID else { return }
        let others = runningMembers(cluster).filter { $0.name != member.name }
        guard let via = others.first else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "readdress", kind: .refused,
                              "cluster '\(cluster.name)': no other member runs to update \(member.name)'s peer URLs through; nothing was changed")
        }
        try await withEndpoints(ClusterPlan(copying: cluster, members: others)) { endpoints in
            if let unhealthy = try await firstUnhealthy(others, of: cluster) {
                throw DeployError(host: unhealthy.host, cluster: cluster.name, step: "readdress", kind: .refused,
                                  "cluster '\(cluster.name)': peer URLs of \(member.name) not updated: member \(unhealthy.name) is not healthy; nothing was changed")
            }
            let client = endpoints.client(for: via, timeout: 10)
            let list = try await client.memberList().members
            guard let known = list.first(where: { $0.id == id }) else {
                throw DeployError(host: member.host, cluster: cluster.name, step: "readdress", kind: .refused,
                                  "cluster '\(cluster.name)': \(member.name) (\(EtcdIDs.hex(id))) is not in the member list; nothing was changed")
            }
            if known.peerURLs == [member.peerURL] {
                progress.host(member.host, "readdress", "\(cluster.name): peer URLs of \(member.name) are \(member.peerURL) already")
            } else {
                _ = try await whileEtcdSettles(cluster: cluster, what: "updating \(member.name)'s peer URLs") { () async throws(EtcdClientError) in
                    try await client.memberUpdate(id: id, peerURLs: [member.peerURL])
                }
                progress.host(member.host, "readdress", "\(cluster.name): peer URLs of \(member.name) updated: \(former) -> \(member.peerURL)")
            }
        }
        try checkpoint("readdress.after-update")
        guard isRunning(member) else {
            progress.host(member.host, "readdress", "\(cluster.name): \(member.name) is not running; it starts on its new address with the others")
            return
        }
        progress.host(member.host, "restart", "\(cluster.name): stopping \(member.name) (new address)")
        try await stop(member, wipe: false)
        let output = try await fleet.check(member.host, "restart", supervisor(on: member.host).startCommand(member))
        progress.host(member.host, "restart", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines)) (new address)")
        try await waitHealthy(ClusterPlan(copying: cluster, members: [member]))
    }
}

extension ClusterOperations {
    /// A stopped member's data dir moved beside it (`.muster-replaced-TIMESTAMP-RANDOM`; deleted with
    /// `wipe`), its marker removed, an empty data dir in its place: the member can join again as a
    /// new one. Run again it finds the dir empty and unmarked and leaves it. Returns where the
    /// data went.
    @discardableResult
    func moveDataAside(_ member: MemberPlan, wipe: Bool) async throws -> String? {
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let data = Shell.quote(member.paths.data), marker = Shell.quote(member.paths.marker)
        // A name nobody can guess, and `mv -T`: the data dir's parent may be the etcd user's,
        // and a link there named like the aside would take the data dir wherever it points.
        let aside = member.paths.data + ".muster-replaced-" + stamp + "-" + LocalState.newToken().prefix(8)
        let move = wipe ? "rm -rf \(data) && echo \(Shell.quote("data wiped: \(member.paths.data)"))"
            : "mv -T \(data) \(Shell.quote(aside)) && echo \(Shell.quote("old data moved to \(aside)"))"
        // The new data dir made, never one found there changed: `install -d` on a link would
        // chown and chmod whatever it points at.
        let script = """
            set -e
            if { [ -e \(marker) ] && [ -d \(data) ]; } || [ -n "$(ls -A \(data) 2>/dev/null)" ]; then \(move); else echo \(Shell.quote("\(member.paths.data) is empty already")); fi
            rm -f \(marker)
            if [ ! -e \(data) ] && [ ! -L \(data) ]; then mkdir -m 0700 \(data); fi
            chown -h etcd:etcd \(data)
            """
        let output = try await fleet.check(member.host, "replace", script).trimmingCharacters(in: .whitespacesAndNewlines)
        progress.host(member.host, "replace", "\(member.cluster): \(output)")
        return output.hasPrefix("old data moved") ? aside : nil
    }
}
