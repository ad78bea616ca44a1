import ArgumentParser
import Foundation
import MusterBasics
import MusterDeploy
import MusterEtcd

/// `muster snapshot check`: a restore drill on the controller.
struct SnapshotCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Restore a snapshot on the controller into a scratch dir, serve it with a one-member etcd on loopback, and check it. Contacts no host.",
        discussion: "The snapshot (a file, or s3://BUCKET/KEY downloaded and checked against its sha256) is restored with the cluster's own restore tool, served by the inventory's member binary on loopback ports until healthy (60 s at most), its keys counted and its revision compared with the file's and the cluster record's; then the member stops and the scratch dir is removed. Exit 0 only if all of that held.")

    @OptionGroup var options: InventoryOptions

    @Argument(help: "The snapshot: a file or s3://BUCKET/KEY.")
    var snapshot: String

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            let check = SnapshotCheck(builder: options.builder(), progress: Progress(quiet: output == .json), snapshot: snapshot)
            let outcome = try await check.run()
            switch output {
            case .table: Self.printTable(outcome)
            case .json: print(Self.document(outcome).serialized(), terminator: "")
            }
            if !outcome.ok { throw ExitCode(1) }
        }
    }

    static func printTable(_ outcome: SnapshotCheck.Outcome) {
        let served = outcome.servedRevision.map(String.init) ?? "-"
        print("\(outcome.cluster): \(outcome.file): \(outcome.ok ? "restorable" : "NOT restorable"): revision \(outcome.fileRevision) (served \(served)), \(outcome.keys.map(String.init) ?? "-") keys, etcd \(outcome.etcdVersion), \(String(format: "%.1f", outcome.seconds)) s")
        for problem in outcome.problems { print("  \(problem)") }
    }

    static func document(_ outcome: SnapshotCheck.Outcome) -> JSONValue {
        .object([
            "ok": .bool(outcome.ok),
            "cluster": .string(outcome.cluster),
            "file": .string(outcome.file),
            "sha256": .string(outcome.sha256),
            "revision": .int(outcome.fileRevision),
            "recorded_revision": outcome.recordedRevision.map(JSONValue.int) ?? .null,
            "served_revision": outcome.servedRevision.map(JSONValue.int) ?? .null,
            "keys": outcome.keys.map(JSONValue.int) ?? .null,
            "etcd_version": .string(outcome.etcdVersion),
            "problems": .array(outcome.problems.map(JSONValue.string)),
        ])
    }
}
