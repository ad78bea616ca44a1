import Foundation
import Testing

/// `muster import ansible` on every Ansible inventory of Golden/import (run from there, so the
/// file name in messages and headers is stable), against `NAME.golden`: the exit status, the
/// muster inventory on stdout, the error on stderr. `scripts/update-goldens.sh` rewrites them.
@Suite struct ImportGoldenTests {
    static let directory = MusterBinary.packageRoot.appendingPathComponent("Tests/MusterCLITests/Golden/import")
    static let inventories: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        .filter { !$0.hasSuffix(".golden") }.sorted()

    @Test func everyCaseIsThere() {
        // A directory read that found nothing would make the parameterized tests vacuous.
        #expect(Self.inventories.contains("kubespray.ini") && Self.inventories.contains("hosts.yml"))
        #expect(Self.inventories.filter { $0.hasPrefix("bad-") }.count >= 10)
    }

    @Test(arguments: inventories)
    func importMatchesItsGolden(_ name: String) throws {
        let run = try MusterBinary().run(["import", "ansible", name], in: Self.directory.path)
        let text = "exit \(run.status)\n--- stdout\n\(run.stdoutText)--- stderr\n\(run.stderrText)"
        let golden = Self.directory.appendingPathComponent(name + ".golden")
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" { try Data(text.utf8).write(to: golden) }
        #expect(text == (try String(contentsOf: golden, encoding: .utf8)), "`muster import ansible \(name)` differs from \(golden.path)")
        if name.hasPrefix("bad-") {
            // Bad input: exit 2, the Ansible file's place first, nothing on stdout.
            #expect(run.status == 2, "\(run)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderrText.range(of: #"^\#(NSRegularExpression.escapedPattern(for: name)):[0-9]+:[0-9]+: error: "#, options: .regularExpression) != nil, "\(run)")
        } else {
            #expect(run.status == 0, "\(run)")
        }
    }

    /// What the import writes is an inventory muster itself renders, one cluster of the etcd
    /// group's hosts; `--out` writes the same text as standard output.
    @Test(arguments: ["kubespray.ini", "hosts.yml", "ranges.ini"])
    func importedInventoryRenders(_ name: String) throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("muster-import-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let source = Self.directory.appendingPathComponent(name).path
        let imported = work + "/imported.yml"
        let written = try MusterBinary().run(["import", "ansible", source, "--out", imported])
        #expect(written.status == 0 && written.stdout.isEmpty, "\(written)")
        let printed = try MusterBinary().run(["import", "ansible", source])
        #expect(try String(contentsOfFile: imported, encoding: .utf8) == printed.stdoutText)

        let root = MusterBinary.packageRoot.path
        let render = try MusterBinary().run(["render", imported, "--out", work + "/tree", "--state", work + "/state",
                                             "--templates", root + "/templates", "--output", "json"])
        #expect(render.status == 0, "\(render)")
        let plan = try JSONSerialization.jsonObject(with: render.stdout) as? [String: Any]
        let clusters = plan?["clusters"] as? [[String: Any]] ?? []
        #expect(clusters.count == 1)
        #expect(clusters.first?["name"] as? String == "etcd")
        let members = (clusters.first?["members"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        let expected: [String: [String]] = [
            "kubespray.ini": ["etcd1", "etcd2", "etcd3"],
            "hosts.yml": ["etcd-a", "etcd-b", "etcd-c"],
            "ranges.ini": ["etcd01", "etcd02", "etcd03", "10.0.2.1", "10.0.2.3", "10.0.2.5", "member-a", "mb"],
        ]
        #expect(members == expected[name], "\(render.stdoutText.prefix(3000))")
        for member in members {
            #expect(FileManager.default.fileExists(atPath: "\(work)/tree/\(member)/etc/etcd/etcd/conf.yml"), "no conf.yml for \(member)")
        }
    }
}
