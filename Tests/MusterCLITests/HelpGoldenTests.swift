import Foundation
import Testing

/// Every command's `--help`, as operators and their scripts read it, against golden files
/// (`COLUMNS` pinned). `scripts/update-goldens.sh` rewrites them after a deliberate change.
@Suite struct HelpGoldenTests {
    static let commands: [[String]] = [
        [], ["init"], ["render"], ["up"], ["verify"], ["down"], ["env"], ["client-cert"], ["replace"],
        ["snapshot", "save"], ["snapshot", "list"], ["snapshot", "prune"], ["snapshot", "check"], ["snapshot", "schedule"], ["restore"], ["defrag"],
        ["sandbox", "up"], ["sandbox", "down"], ["sandbox", "status"], ["sandbox", "inventory"],
        ["discovery", "serve"], ["import"], ["import", "ansible"], ["state", "export"], ["state", "import"],
    ]
    static let goldenDirectory = MusterBinary.packageRoot.appendingPathComponent("Tests/MusterCLITests/Golden/help")

    @Test(arguments: commands)
    func helpMatchesItsGolden(_ command: [String]) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = "100"
        let run = try MusterBinary().run(command + ["--help"], environment: environment)
        #expect(run.status == 0, "\(run)")
        let name = (["muster"] + command).joined(separator: "-") + ".txt"
        let golden = Self.goldenDirectory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.goldenDirectory, withIntermediateDirectories: true)
            try run.stdout.write(to: golden)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(run.stdoutText == expected, "`muster \(command.joined(separator: " ")) --help` differs from \(golden.path); run scripts/update-goldens.sh after a deliberate change")
    }
}
