import ArgumentParser
import Foundation
import MusterDeploy
import MusterEtcd
import MusterPlan

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the inventory's clusters up, from bare hosts to a verified cluster.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Connect and run preflight only; change nothing.")
    var dryRun = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        try await reportingErrors {
            let builder = PlanBuilder(inventoryPath: options.inventory, stateDirectory: options.state,
                                      templatesDirectory: options.templates, cluster: options.cluster)
            var bringUp = BringUp(builder: builder, options: remote.runOptions, progress: Progress())
            bringUp.dryRun = dryRun
            let outcome = try await bringUp.run()
            try printReports(outcome.reports, format: output)
            if outcome.reports.contains(where: { !$0.ok }) { throw ExitCode(1) }
        }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop the inventory's members and muster's dnsmasq; etcd data stays unless --wipe-data.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Also delete every member's data directory (the cluster's keys are lost).")
    var wipeData = false

    func run() async throws {
        try await reportingErrors {
            let builder = PlanBuilder(inventoryPath: options.inventory, stateDirectory: options.state,
                                      templatesDirectory: options.templates, cluster: options.cluster)
            var tearDown = TearDown(builder: builder, options: remote.runOptions, progress: Progress())
            tearDown.wipeData = wipeData
            try await tearDown.run()
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check running clusters against the plan: members, IDs, leader, health, a write and read.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    @Flag(help: "Reach client ports through an SSH tunnel per host.")
    var viaSSH = false

    func run() async throws {
        try await reportingErrors {
            let built = try PlanBuilder(inventoryPath: options.inventory, stateDirectory: options.state,
                                        templatesDirectory: options.templates, cluster: options.cluster).build()
            let reports = try await Verification.run(plan: built.plan, inventory: built.inventory,
                                                     stateDirectory: built.state.directory,
                                                     options: remote.runOptions, viaSSH: viaSSH,
                                                     progress: Progress(quiet: output == .json))
            try printReports(reports, format: output)
            if reports.contains(where: { !$0.ok }) { throw ExitCode(1) }
        }
    }
}

func printReports(_ reports: [VerificationReport], format: OutputFormat) throws {
    switch format {
    case .table:
        for report in reports { print(report.table()) }
    case .json:
        print(reports.count == 1 ? reports[0].json() : "[" + reports.map { $0.json() }.joined(separator: ",") + "]")
    }
}
