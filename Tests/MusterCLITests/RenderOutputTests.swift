import Foundation
import Testing

/// `muster render`'s standard output for the walkthrough's static inventory, as operators read
/// it, against a golden file (`scripts/update-goldens.sh` rewrites it after a deliberate change).
@Suite struct RenderOutputTests {
    @Test func renderOfTheStaticSeedPrintsItsPlanAndFiles() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("muster-render-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let root = MusterBinary.packageRoot.path
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = "100"
        // The seed pins the member version; the state dir is fresh, the tree goes to OUT.
        let run = try MusterBinary().run(["render", "inventories/seed-static.yml", "--out", out + "/tree", "--state", out + "/state",
                                          "--templates", "templates"], environment: environment, in: root)
        #expect(run.status == 0, "\(run)")
        let text = run.stdoutText.replacingOccurrences(of: out, with: "TMP")
        let golden = MusterBinary.packageRoot.appendingPathComponent("Tests/MusterCLITests/Golden/render-seed-static.txt")
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" { try Data(text.utf8).write(to: golden) }
        #expect(text == (try String(contentsOf: golden, encoding: .utf8)), "render's output differs from \(golden.path)")
    }
}
