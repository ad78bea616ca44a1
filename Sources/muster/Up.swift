import ArgumentParser
import Foundation
import MusterDeploy
import MusterEtcd
import MusterWorkspace

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the inventory's clusters up, from bare hosts to a verified cluster.",
        discussion: "With --cluster NAME, only NAME, and the discovery backend it needs while it has not formed yet.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Connect and run preflight only; change nothing on any host or in muster's state.")
    var dryRun = false

    @Flag(help: "Remove members the inventory no longer lists (one at a time, leadership moved first).")
    var removeMembers = false

    @Flag(help: "With --remove-members: also delete the removed members' data directories.")
    var wipeData = false

    @Flag(help: "Allow what etcd calls unsafe: shrinking a 2-member cluster to 1.")
    var force = false

    @Flag(help: "Skip the snapshot taken before restarting or reconfiguring a running cluster.")
    var noBackup = false

    @Flag(help: "Start new members without measuring fdatasync on their data dirs' filesystems (preflight refuses a p99 over 100 ms).")
    var skipDiskCheck = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func validate() throws {
        if wipeData && !removeMembers { throw ValidationError("--wipe-data on up applies only to removed members: add --remove-members") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            var bringUp = BringUp(builder: options.builder(), options: remote.runOptions, progress: Progress())
            bringUp.dryRun = dryRun
            bringUp.removeMembers = removeMembers
            bringUp.wipeRemovedData = wipeData
            bringUp.force = force
            bringUp.backup = !noBackup
            bringUp.checkDisks = !skipDiskCheck
            let outcome = try await bringUp.run()
            switch output {
            case .table:
                for report in outcome.reports { print(report.table()) }
            case .json:
                print(OutputDocument.up(outcome, dryRun: dryRun).serialized(), terminator: "")
            }
            if outcome.reports.contains(where: { !$0.ok }) { throw ExitCode(1) }
        }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop the inventory's members and muster's dnsmasq; etcd data stays unless --wipe-data.",
        discussion: "With --cluster NAME, only NAME's members (never the discovery backend it formed through).")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Also delete every member's data directory and private keys, muster's copies of the data beside it, and recorded removed members' data (the cluster's keys are lost).")
    var wipeData = false

    @Flag(help: "Remove every file muster put on the hosts for the cluster named by --cluster: data, copies, keys, config, units, logs, and binaries no other cluster there uses.")
    var purge = false

    func validate() throws {
        if purge && options.cluster == nil {
            throw ValidationError("--purge removes every file muster put on the hosts for one cluster: name it with --cluster NAME")
        }
    }

    func run() async throws {
        try await reportingErrors {
            var tearDown = TearDown(builder: options.builder(), options: remote.runOptions, progress: Progress())
            tearDown.wipeData = wipeData
            tearDown.purge = purge
            try await tearDown.run()
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check running clusters against the plan: members, IDs, leader, health, a write and read; certificates and metrics.",
        discussion: "With --cluster NAME, only NAME: a formed cluster no longer needs its discovery backend.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    @Flag(help: "Reach client ports through an SSH tunnel per host.")
    var viaSSH = false

    @Flag(help: "Count warnings as failures (exit 1 when any check warns).")
    var strict = false

    @Option(help: ArgumentHelp("How long the metric checks watch each member: /metrics read twice this far apart (100ms to 10m, e.g. 2s, 500ms, 1m).", valueName: "DURATION"))
    var sample: SampleDuration = SampleDuration(.seconds(2))

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            var builder = options.builder()
            builder.includeBackendOfUnformedCluster = false
            let workspace = try await builder.load(lock: false)
            var reports = try await Verification.run(workspace: workspace, options: remote.runOptions, viaSSH: viaSSH,
                                                     sample: sample.duration, progress: Progress(quiet: output == .json))
            for index in reports.indices { reports[index].strict = strict }
            switch output {
            case .table:
                for report in reports { print(report.table()) }
                if reports.contains(where: { report in report.health.allSatisfy { !$0.healthy } }) {
                    FileHandle.standardError.write(Data("hint: no member answered; if the cluster was stopped (`muster down`), `muster up \(options.inventory)` starts it again with its data\n".utf8))
                }
            case .json:
                print(OutputDocument.verify(reports).serialized(), terminator: "")
            }
            if reports.contains(where: { !$0.ok }) { throw ExitCode(1) }
        }
    }
}

/// `--sample`: a number with `ms`, `s` or `m` (at least 100 ms, at most 10 minutes).
struct SampleDuration: ExpressibleByArgument {
    var duration: Duration

    init(_ duration: Duration) { self.duration = duration }

    var defaultValueDescription: String {
        let (seconds, attoseconds) = duration.components
        return attoseconds == 0 ? "\(seconds)s" : "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
        guard let (suffix, scale) = units.first(where: { argument.hasSuffix($0.0) && Double(argument.dropLast($0.0.count)) != nil }),
              let number = Double(argument.dropLast(suffix.count)), number.isFinite else { return nil }
        let milliseconds = number * scale * 1000
        guard (100...600_000).contains(milliseconds) else { return nil }
        duration = .milliseconds(Int64(milliseconds.rounded()))
    }
}

/// The one shape of every `--output json` document (JSON.md): a top-level object with a
/// `clusters` array, plus what the command adds.
enum OutputDocument {
    static func verify(_ reports: [VerificationReport]) -> JSONValue {
        .object([
            "ok": .bool(reports.allSatisfy(\.ok)),
            "clusters": .array(reports.map { $0.jsonValue() }),
        ])
    }

    static func up(_ outcome: BringUp.Outcome, dryRun: Bool) -> JSONValue {
        .object([
            "ok": .bool(outcome.reports.allSatisfy(\.ok)),
            "dry_run": .bool(dryRun),
            "changed": .bool(outcome.changed),
            "bytes_sent": .int(Int64(outcome.bytesSent)),
            "backups": .array(outcome.backups.map(JSONValue.string)),
            "clusters": .array(outcome.reports.map { $0.jsonValue() }),
            "hosts": .array(outcome.hosts.map { host in
                .object([
                    "host": .string(host.host),
                    "files_written": .int(Int64(host.filesWritten)),
                    "bytes_sent": .int(Int64(host.bytesSent)),
                    "binaries": .array(host.binaries.map(JSONValue.string)),
                    "started": .array(host.started.map(JSONValue.string)),
                    "restarted": .array(host.restarted.map(JSONValue.string)),
                ])
            }),
        ])
    }
}
