import Foundation
import MusterPKI
import MusterBasics
import MusterPlan
import MusterWorkspace

/// Runs `up`'s steps for one cluster, one at a time, each on the members it carries: waits for
/// the hosts a step touches to have their files, tells the ledger and the cluster record what
/// changed. Used by one cluster's bring-up, step after step.
final class UpStepRun {
    let cluster: ClusterPlan
    let workspace: Workspace
    let operations: ClusterOperations
    let preparation: HostPreparation
    let ledger: ChangeLedger
    let context: BootstrapContext
    let started: Countdown
    let wipeRemovedData: Bool
    /// Hosts of the members the steps restart: their files are on them before the backup and
    /// before the first restart.
    private let restartHosts: [String]
    private var modeReady = false
    private var arrived = false

    init(cluster: ClusterPlan, steps: [Step], workspace: Workspace, operations: ClusterOperations,
         preparation: HostPreparation, ledger: ChangeLedger, context: BootstrapContext, started: Countdown, wipeRemovedData: Bool) {
        self.cluster = cluster
        self.workspace = workspace
        self.operations = operations
        self.preparation = preparation
        self.ledger = ledger
        self.context = context
        self.started = started
        self.wipeRemovedData = wipeRemovedData
        restartHosts = steps.flatMap { step -> [String] in
            switch step.action {
            case .restart(let member, _): return [member.host]
            case .upgrade(let members, _): return members.map(\.host)
            default: return []
            }
        }
    }

    /// The wave's other clusters wait for this one's members to have started (etcdctl ships
    /// then); told once, after the last start or join, or at the end.
    func startsDone() async {
        guard !arrived else { return }
        arrived = true
        await started.arrive()
    }

    func run(_ step: Step) async throws {
        switch step.action {
        case .backup, .readdress, .start, .join:
            break
        case .remove(let removal) where removal.beforeJoins:
            break
        default:
            await startsDone()
        }
        let name = cluster.name
        switch step.action {
        case .backup(let voters):
            for host in restartHosts { try await preparation.ready(host) }
            ledger.addBackup(try await operations.backup(cluster, voters: voters, state: workspace.state))
        case .readdress(let member):
            try await preparation.ready(member.host)
            try await operations.readdress(member, cluster: cluster)
            try StepRecords.readdressed(member, in: workspace.state)
            ledger.record(member.host) { $0.restarted.append(name) }
        case .remove(let removal):
            try await operations.remove(removal, cluster: cluster, wipe: wipeRemovedData)
            try StepRecords.removed(removal, from: cluster.name, in: workspace.state)
            if cluster.tls { try ClusterPKI.forget(member: removal.name, cluster: cluster.name, stateDirectory: workspace.state.directory) }
            if let host = removal.member?.host, operations.fleet.sessions[host] != nil {
                ledger.record(host) { $0.stopped.append(name) }
            }
        case .start(let member):
            try await beforeFirstStart()
            try await preparation.ready(member.host)
            try await operations.start(member)
            ledger.record(member.host) { $0.started.append(name) }
        case .join(let member):
            try await beforeFirstStart()
            try await preparation.ready(member.host)
            let joined = try await operations.join(member, cluster: cluster)
            try StepRecords.joined(joined, in: workspace.state)
            ledger.record(member.host) { $0.started.append(name) }
        case .waitHealthy:
            try await operations.waitHealthy(cluster)
        case .restart(let member, let reason):
            for host in restartHosts { try await preparation.ready(host) }
            try await operations.restart(member, cluster: cluster, reason: reason)
            ledger.record(member.host) { $0.restarted.append(name) }
        case .upgrade(let members, let version):
            for host in restartHosts { try await preparation.ready(host) }
            // The leader last, with leadership handed over first.
            let (order, leader) = await operations.leaderLast(members, cluster: cluster)
            for member in order {
                try checkpoint("up.rolling-restart")
                if let leader, member.name == leader.name, let target = order.first(where: { $0.name != leader.name }) {
                    await operations.moveLeadership(from: leader, to: target, cluster: cluster)
                }
                try await operations.restart(member, cluster: cluster, reason: "etcd \(version)")
                ledger.record(member.host) { $0.restarted.append(name) }
            }
            try await operations.waitForClusterVersion(cluster)
        case .moveDataAside(let member, let wipe):
            try await operations.moveDataAside(member, wipe: wipe)
        case .writeFiles:
            // `up` writes every host's files before its clusters' steps (one command per host).
            break
        case .ship, .stop, .restoreData, .writeConfigs, .defragment, .save:
            throw DeployError(host: nil, cluster: name, step: step.name, "up has no step \(step.name)")
        }
    }

    /// The mode's part before the cluster's first member starts (DNS records served, discovery
    /// keys saved).
    private func beforeFirstStart() async throws {
        guard !modeReady else { return }
        modeReady = true
        let mode = mode(for: cluster)
        if mode.needsEveryHostBeforeStart {
            for host in cluster.hosts { try await preparation.ready(host) }
        }
        try await mode.beforeStart(cluster, in: workspace, context: context, operations: operations)
    }
}

/// The cluster record told of a membership step, once it is done: what `verify` and the next
/// plans follow.
enum StepRecords {
    /// By ID: a name can leave, join again and leave again.
    static func removed(_ removal: RemovalPlan, from cluster: String, in state: LocalState) throws {
        try state.records.update(cluster) { record in
            guard record?.removed.contains(where: { $0.id == EtcdIDs.hex(removal.id) }) == false else { return }
            record?.removed.append(ClusterRecord.Member(name: removal.name, id: EtcdIDs.hex(removal.id), peerURLs: [removal.peerURL]))
        }
    }

    /// A voter now.
    static func joined(_ member: MemberPlan, in state: LocalState) throws {
        guard let id = member.memberID else { return }
        try state.records.update(member.cluster) { record in
            record?.added.append(ClusterRecord.Member(name: member.name, id: EtcdIDs.hex(id), peerURLs: [member.peerURL],
                                                      initialCluster: member.join?.initialCluster))
        }
    }

    /// Its peer URLs updated (`member update`).
    static func readdressed(_ member: MemberPlan, in state: LocalState) throws {
        guard let id = member.memberID else { return }
        try state.records.update(member.cluster) { record in
            record?.updatePeerURLs(name: member.name, id: EtcdIDs.hex(id), peerURLs: [member.peerURL])
        }
    }
}
