import ArgumentParser
import Foundation
import MusterBasics
import MusterDeploy
import MusterEtcd

/// `muster defrag INVENTORY --cluster C [--dry-run]`.
struct DefragCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "defrag",
        abstract: "Defragment every member's database, one member at a time, the leader last.",
        discussion: "Every member must be running and healthy first (a member being defragmented answers nothing). Each member is healthy again before the next starts. Alarms are not disarmed: once space is free, `etcdctl alarm disarm`. --cluster may be left out when the inventory has one cluster.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Print the steps in the order they would run; change nothing.")
    var dryRun = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func validate() throws {
        if dryRun, output == .json { throw ValidationError("--dry-run prints its steps as text: it takes no --output json") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            // Progress on stderr in either format, as `up` and `restore` say theirs.
            var defrag = Defrag(builder: options.builder(), options: remote.runOptions, progress: Progress())
            defrag.dryRun = dryRun
            guard let outcome = try await defrag.run() else { return }
            switch output {
            case .table:
                for row in outcome.members {
                    print("\(outcome.cluster): \(row.member) on \(row.host): \(row.bytesBefore) -> \(row.bytesAfter) bytes")
                }
                for alarm in outcome.alarms { print("\(outcome.cluster): alarm still raised: \(alarm)") }
            case .json:
                print(JSONValue.object([
                    "ok": .bool(true),
                    "clusters": .array([.object([
                        "cluster": .string(outcome.cluster),
                        "members": .array(outcome.members.map { row in
                            .object(["name": .string(row.member), "host": .string(row.host),
                                     "db_size_before": .int(row.bytesBefore), "db_size_after": .int(row.bytesAfter)])
                        }),
                        "alarms": .array(outcome.alarms.map(JSONValue.string)),
                    ])]),
                ]).serialized(), terminator: "")
            }
        }
    }
}
