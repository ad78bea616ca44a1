import Foundation
import MusterBasics
import MusterPlan

/// One change a run makes to a cluster, as a value (kubeadm's phases are the model): named, so
/// that progress, `--dry-run` and failpoints say the same thing; idempotent, so that the next run
/// after a cut does it again and finds done what was done; and carrying the members it acts on.
///
/// A run plans its whole list first (`UpSteps`, `ReplaceSteps`, `RestoreSteps`, `DefragSteps`, `SnapshotSteps`: pure functions of the plan and
/// the hosts' facts), then `StepRunner` either lists it (`--dry-run`) or runs it, printing each
/// step's `line` as it starts.
struct Step: Sendable {
    enum Action: Sendable {
        /// A snapshot from these voters before the cluster changes.
        case backup(voters: [MemberPlan])
        /// `member update` of the peer URLs, then a restart on the new address; the record follows.
        case readdress(MemberPlan)
        /// `member remove` (leadership moved first if it leads), then stopped and disabled where
        /// its host answers; the record follows.
        case remove(RemovalPlan)
        /// A member of the cluster that does not run: started, gated on its peer port.
        case start(MemberPlan)
        /// A newcomer: added as a learner, started, promoted once in sync; the record follows.
        case join(MemberPlan)
        /// Every member of the cluster answers healthy (bounded).
        case waitHealthy
        /// One running member restarted on its new files, healthy again before the next step.
        case restart(MemberPlan, reason: String)
        /// Running members restarted onto another etcd one at a time, the leader last.
        case upgrade([MemberPlan], version: String)
        /// A stopped member's data dir moved aside (deleted with `wipe`) and made again empty.
        case moveDataAside(MemberPlan, wipe: Bool)
        /// A member's files (config, unit, certificates) written for it to join.
        case writeFiles(MemberPlan)
        /// A restore's tool and snapshot sent to these hosts where they lack them (nothing stops yet).
        case ship(tool: String, snapshot: String, hosts: [String])
        /// A member stopped, its data kept.
        case stop(MemberPlan)
        /// A stopped member's data restored from the snapshot on its own host, the data dir there
        /// moved aside (never deleted).
        case restoreData(MemberPlan, revision: Int64)
        /// These members' conf.yml written as the plan renders them (a restore's founding).
        case writeConfigs([MemberPlan])
        /// A member's database rewritten to its size in use, healthy again before the next step.
        case defragment(MemberPlan)
        /// A snapshot streamed from this member into `directory`, checked, named, recorded, and
        /// all but the newest `keep` of the cluster's there pruned.
        case save(MemberPlan, into: String, retention: RetentionPolicy)
    }

    var cluster: String
    var action: Action
    /// Boundaries reached right after the step, besides the next step's own: the names earlier
    /// tests cut at (`replace.after-remove`).
    var after: [String] = []

    /// What a failpoint names and what a progress line says: `COMMAND.NAME` is reached before
    /// the step runs.
    var name: String {
        switch action {
        case .backup: return "backup"
        case .readdress: return "readdress"
        case .remove: return "remove"
        case .start: return "start"
        case .join: return "join"
        case .waitHealthy: return "health-wait"
        case .restart: return "rolling-restart"
        case .upgrade: return "upgrade"
        case .moveDataAside: return "move-data-aside"
        case .writeFiles: return "write-files"
        case .ship: return "ship"
        case .stop: return "stop"
        case .restoreData: return "restore-data"
        case .writeConfigs: return "write-configs"
        case .defragment: return "defragment"
        case .save: return "save"
        }
    }

    var summary: String {
        switch action {
        case .backup(let voters):
            return "snapshot of the cluster from its leader (voters \(voters.map(\.name).joined(separator: ", "))) into the state's snapshots/ before changing it"
        case .readdress(let member):
            return "update \(member.name) peer URLs \(member.formerPeerURL ?? "") -> \(member.peerURL), then restart it on its new address"
        case .remove(let removal) where removal.beforeJoins:
            return "remove \(removal.name) (\(EtcdIDs.hex(removal.id))) first: it is gone (host unreachable or member stopped); stopped where its host answers"
        case .remove(let removal):
            return "remove \(removal.name) (\(EtcdIDs.hex(removal.id))), leadership moved away first if it leads, then stop and disable it"
        case .start(let member):
            return "start \(member.name) on \(member.host)"
        case .join(let member):
            return "add learner \(member.name) (\(member.peerURL)), start it, promote it once in sync"
        case .waitHealthy:
            return "wait until every member answers healthy"
        case .restart(let member, let reason):
            return "restart \(member.name) (\(reason)), healthy again before the next"
        case .upgrade(let members, let version):
            return "restart \(members.map(\.name).joined(separator: ", ")) onto etcd \(version) one at a time, the leader last, then wait for the cluster version"
        case .moveDataAside(let member, let wipe):
            return "\(wipe ? "delete" : "move aside") the data dir \(member.paths.data) of \(member.name), leaving it empty"
        case .writeFiles(let member):
            return "write \(member.name)'s files for joining on \(member.host)"
        case .ship(let tool, let snapshot, let hosts):
            return "send \(tool) and the snapshot \(snapshot) to \(hosts.joined(separator: ", ")) where they lack them, while the cluster still runs"
        case .stop(let member):
            return "stop \(member.name) on \(member.host), its data kept"
        case .restoreData(let member, let revision):
            return "restore \(member.name)'s data on \(member.host) from the snapshot (revision \(revision)) into \(member.paths.data), the data dir there moved aside"
        case .writeConfigs(let members):
            return "write the conf.yml of \(members.map(\.name).joined(separator: ", ")) for the restored founding (its new token, every member in initial-cluster)"
        case .defragment(let member):
            return "defragment \(member.name) on \(member.host) (it answers nothing meanwhile), healthy again before the next"
        case .save(let member, let destination, let retention):
            return "stream a snapshot from \(member.name) on \(member.host) into \(destination), check it, record it, keep there what \(retention.flags) keeps"
        }
    }

    /// The progress line, the same in a dry run (behind `dry run: `) and in the run.
    var line: String { "cluster \(cluster), step \(name): \(summary)" }
}

/// Lists a run's steps or runs them, with a boundary (failpoint and Ctrl-C) before each step,
/// named `COMMAND.STEP`, and the step's own `after` boundaries once it is done.
struct StepRunner: Sendable {
    /// `up`, `replace`, `restore`, `defrag`, `snapshot`: the first part of every boundary's name.
    var command: String
    var progress: Progress

    func list(_ steps: [Step]) {
        for step in steps { progress.note("dry run: " + step.line) }
    }

    func run(_ steps: [Step], _ body: (Step) async throws -> Void) async throws {
        for step in steps {
            try checkpoint("\(command).\(step.name)")
            progress.note(step.line)
            try await body(step)
            for boundary in step.after { try checkpoint(boundary) }
        }
    }
}
