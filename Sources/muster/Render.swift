import ArgumentParser
import Foundation
import MusterPlan
import MusterWorkspace

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render every member's conf.yml, units and DNS records; contacts no host.")

    @OptionGroup var options: InventoryOptions

    @Option(help: "Where to write the tree (default: rendered/INVENTORY-NAME).")
    var out: String?

    @Option(help: "Summary format on standard output: table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            let result = try options.builder().build()
            let name = URL(fileURLWithPath: options.inventory).deletingPathExtension().lastPathComponent
            let directory = out ?? "rendered/\(name)"
            let summary = PlanSummary.text(result.plan)
            let json = try PlanSummary.json(result.plan)
            let written = try RenderedTree.write(result.plan, to: directory, summary: summary, json: json)
            switch output {
            case .json:
                FileHandle.standardOutput.write(json)
                print()
            case .table:
                print(summary, terminator: "")
                print("wrote \(written.count) files under \(directory):")
                written.forEach { print("  \($0)") }
            }
        }
    }
}
