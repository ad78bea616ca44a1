import ArgumentParser
import Foundation
import MusterBasics
import MusterDeploy
import MusterEtcd

/// `muster restore INVENTORY --cluster C --from FILE [--force] [--dry-run]`.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Rebuild a cluster from a snapshot file: new token and IDs, the snapshot's keys.",
        discussion: "The file is checked first (etcd's sha256 at its end, its etcd minor no newer than the members'). A cluster that answers healthy is refused without --force. Every member stops; its data dir is moved aside to DATA.muster-before-restore-TIMESTAMP-RUN (never deleted) and restored on its host; each member's conf.yml is rewritten for the restored founding (initial-cluster: the members, the restore's token); the members start, are verified, and the cluster record takes the new IDs.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: "The snapshot file (as `muster snapshot save` or `etcdctl snapshot save` writes it), or s3://BUCKET/KEY.")
    var from: String?

    @Option(help: ArgumentHelp("Rebuild a cluster that lost quorum from this surviving member's database (its host's name): stopped, copied to the controller, restored on every member.", valueName: "host"),
            completion: InventoryCompletion.members)
    var fromMember: String?

    @Flag(help: "Restore even over a cluster that answers healthy (its current keys are replaced).")
    var force = false

    @Flag(help: "Check the file, print the steps; change nothing.")
    var dryRun = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func validate() throws {
        if dryRun, output == .json { throw ValidationError("--dry-run prints its steps as text: it takes no --output json") }
        guard (from == nil) != (fromMember == nil) else { throw ValidationError("name one of --from FILE and --from-member HOST") }
        if fromMember != nil, dryRun { throw ValidationError("--from-member stops the member to copy its database: it has no --dry-run") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            let result: Restore.Outcome?
            if let fromMember {
                var recovery = MemberRecovery(builder: options.builder(), options: remote.runOptions, progress: Progress(), survivor: fromMember)
                recovery.force = force
                result = try await recovery.run()
            } else {
                var restore = Restore(builder: options.builder(), options: remote.runOptions, progress: Progress(), snapshot: from ?? "")
                restore.force = force
                restore.dryRun = dryRun
                result = try await restore.run()
            }
            guard let outcome = result else { return }
            switch output {
            case .table:
                print("\(outcome.cluster): restored from \(outcome.file) at revision \(outcome.revision) as cluster \(EtcdIDs.hex(outcome.clusterID)) (token \(outcome.token))")
                for member in outcome.members {
                    print("  \(member.name) on \(member.host): member \(EtcdIDs.hex(member.id))" + (member.movedAside.map { ", old data in \($0)" } ?? ""))
                }
                print(outcome.report.table())
            case .json:
                print(SnapshotDocument.restore(outcome).serialized(), terminator: "")
            }
            if !outcome.report.ok { throw ExitCode(1) }
        }
    }
}
