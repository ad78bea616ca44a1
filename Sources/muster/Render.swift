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
            // Planned whole, rendered and written cluster by cluster (each file dropped once on
            // disk), clusters side by side.
            let workspace = try await options.builder().load(lock: false, renderingFiles: false)
            let name = URL(fileURLWithPath: options.inventory).deletingPathExtension().lastPathComponent
            let directory = out ?? "rendered/\(name)"
            let summary = PlanSummary.text(workspace.plan)
            let (written, files) = try RenderedTree.write(rendering: workspace.plan, with: workspace.renderer, to: directory,
                                                         summary: summary, extras: prometheusFiles(workspace))
            switch output {
            case .json:
                PlanSummary.json(workspace.plan, files: files) { FileHandle.standardOutput.write(Data($0)) }
                print()
            case .table:
                print(summary, terminator: "")
                print("templates from \(workspace.templates.origin)")
                print("wrote \(written.count) files under \(directory):")
                written.forEach { print("  \($0)") }
            }
        }
    }

    /// The scrape config names the state's certificate files by absolute path: Prometheus reads
    /// them wherever it runs from.
    func prometheusFiles(_ workspace: Workspace) -> [(path: String, contents: String)] {
        var state = workspace.state.directory
        if !state.hasPrefix("/") { state = FileManager.default.currentDirectoryPath + "/" + state }
        let clusters = workspace.plan.clusters
        return [(PrometheusFiles.scrapePath, PrometheusFiles.scrapeConfig(clusters) { "\(state)/pki/\($0)" }),
                (PrometheusFiles.alertsPath, PrometheusFiles.alertRules(clusters))]
    }
}
