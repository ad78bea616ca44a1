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

    @Option(help: "The snapshot file (as `muster snapshot save` or `etcdctl snapshot save` writes it).")
    var from: String

    @Flag(help: "Restore even over a cluster that answers healthy (its current keys are replaced).")
    var force = false

    @Flag(help: "Check the file, print the steps; change nothing.")
    var dryRun = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func validate() throws {
        if dryRun, output == .json { throw ValidationError("--dry-run prints its steps as text: it takes no --output json") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            var restore = Restore(builder: options.builder(), options: remote.runOptions, progress: Progress(), snapshot: from)
            restore.force = force
            restore.dryRun = dryRun
            guard let outcome = try await restore.run() else { return }
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
