import Foundation
import MusterPlan

/// What the hosts' facts say of one member, as far as `up`'s steps depend on it.
struct MemberCondition: Sendable, Equatable {
    var running: Bool
    /// Why a running member must restart; nil when it runs as planned.
    var restart: RestartCause?

    enum RestartCause: Sendable, Equatable {
        /// Its process is not the plan's binary: an upgrade (or a downgrade) of etcd.
        case anotherBinary
        /// It runs under the other supervisor than its host's chosen one.
        case anotherSupervisor(Supervisor)
        /// Its config or certificates changed, or it runs on older files than its host holds.
        case newFiles
    }
}

/// `up`'s steps for one cluster: one pure function of the cluster as planned, the conditions of
/// its members and `--no-backup`. The run and its `--dry-run` both take their list from here.
enum UpSteps {
    /// In order: the backup (before any change of a running cluster), re-addressed members,
    /// members that are gone already (removed before newcomers join), the members that do not
    /// run (started, or joined as learners) and the wait for health, the members that leave
    /// (after the newcomers are voters), then the restarts (an upgrade as one step, the leader
    /// last). Missing members start before any restart: a member restarted while its peers are
    /// still down could not become healthy without a quorum.
    static func plan(_ cluster: ClusterPlan, conditions: [String: MemberCondition], backup: Bool) -> [Step] {
        let condition = { (member: MemberPlan) in conditions[member.name] ?? MemberCondition(running: false) }
        let running = cluster.members.filter { condition($0).running }
        let readdressed = cluster.members.filter { $0.formerPeerURL != nil }
        // A member whose address changed restarts through its readdress step instead.
        let restart = running.filter { $0.formerPeerURL == nil && condition($0).restart != nil }
        let joining = cluster.members.filter { $0.join?.isNew == true }
        let starting = cluster.members.filter { $0.join?.isNew == true || !condition($0).running }
        var steps: [Step] = []
        func add(_ action: Step.Action, after: [String] = []) {
            steps.append(Step(cluster: cluster.name, action: action, after: after))
        }
        if backup, !running.isEmpty, !restart.isEmpty || !joining.isEmpty || !cluster.removals.isEmpty || !readdressed.isEmpty {
            let leaving = cluster.removals.filter { !$0.beforeJoins }.compactMap(\.member)
            add(.backup(voters: running + leaving))
        }
        for member in readdressed { add(.readdress(member)) }
        for removal in cluster.removals where removal.beforeJoins { add(.remove(removal)) }
        for member in starting {
            add(member.join?.isNew == true ? .join(member) : .start(member), after: ["up.between-member-starts"])
        }
        if !starting.isEmpty { add(.waitHealthy) }
        for removal in cluster.removals where !removal.beforeJoins { add(.remove(removal)) }
        if restart.contains(where: { condition($0).restart == .anotherBinary }) {
            add(.upgrade(restart, version: cluster.memberVersion))
        } else {
            for member in restart {
                let reason: String
                if case .anotherSupervisor(let supervisor) = condition(member).restart {
                    reason = "moving to \(supervisor.rawValue)"
                } else {
                    reason = "new config or certificates"
                }
                add(.restart(member, reason: reason))
            }
        }
        return steps
    }
}

extension ClusterOperations {
    /// Each member's condition by name, from the facts and the files about to be written.
    func conditions(_ cluster: ClusterPlan, files: [RenderedFile]) -> [String: MemberCondition] {
        var conditions: [String: MemberCondition] = [:]
        for member in cluster.members {
            var condition = MemberCondition(running: isRunning(member))
            if condition.running {
                if runsAnotherBinary(member) {
                    condition.restart = .anotherBinary
                } else if runsUnderAnotherSupervisor(member) {
                    condition.restart = .anotherSupervisor(supervisor(on: member.host))
                } else if files.contains(where: { $0.host == member.host && ($0.path == member.paths.config || $0.path.hasPrefix(member.paths.pkiDir + "/")) })
                            || facts[member.host]?.members[cluster.name]?.runsOnOlderFiles == true {
                    condition.restart = .newFiles
                }
            }
            conditions[member.name] = condition
        }
        return conditions
    }
}
