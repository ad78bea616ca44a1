import Foundation
import Testing
import MusterPlan
@testable import MusterWorkspace

/// `render --out DIR` removes what an earlier render wrote and is no longer planned, reading the
/// list from DIR's manifest: a manifest someone edited (or a tree someone planted symlinks in)
/// must never make it delete through a symlink, outside DIR, or anything but a regular file.
@Suite struct RenderedTreeTests {
    @Test func theManifestDeletesOnlyRegularFilesItWroteInsideTheTree() throws {
        let root = FileManager.default.temporaryDirectory.path + "/muster-tree-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let out = root + "/out", outside = root + "/outside"
        let manager = FileManager.default
        try manager.createDirectory(atPath: out + "/a/etc", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: out + "/kept-dir", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: outside, withIntermediateDirectories: true)
        for victim in ["victim", "through-link", "linked-file"] {
            try Data("precious\n".utf8).write(to: URL(fileURLWithPath: "\(outside)/\(victim)"))
        }
        try Data("stale\n".utf8).write(to: URL(fileURLWithPath: out + "/a/etc/stale.yml"))
        try manager.createSymbolicLink(atPath: out + "/link", withDestinationPath: outside)
        try manager.createSymbolicLink(atPath: out + "/file-link", withDestinationPath: outside + "/linked-file")
        let manifest = [
            "a/etc/stale.yml",           // written earlier, no longer planned: the one to remove
            "link/through-link",         // through a symlinked directory
            "file-link",                 // a symlink itself
            "../outside/victim",         // out of the tree
            "a/../../outside/victim",
            outside + "/victim",          // absolute
            "kept-dir",                  // a directory
            "",
        ].joined(separator: "\n")
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: out + "/" + RenderedTree.manifestName))

        let plan = Plan(inventory: "inventory.yml", clusters: [],
                        files: [RenderedFile(host: "a", path: "/etc/new.yml", contents: "new\n", mode: 0o644)])
        let written = try RenderedTree.write(plan, to: out, summary: "summary\n", json: Data("{}".utf8))

        #expect(written.contains(out + "/a/etc/new.yml"))
        #expect(!manager.fileExists(atPath: out + "/a/etc/stale.yml"), "a stale file it wrote stays")
        for victim in ["victim", "through-link", "linked-file"] {
            #expect(try String(contentsOfFile: "\(outside)/\(victim)", encoding: .utf8) == "precious\n", "\(victim) was deleted")
        }
        #expect((try? manager.destinationOfSymbolicLink(atPath: out + "/file-link")) == outside + "/linked-file")
        #expect((try? manager.destinationOfSymbolicLink(atPath: out + "/link")) == outside)
        var isDirectory: ObjCBool = false
        #expect(manager.fileExists(atPath: out + "/kept-dir", isDirectory: &isDirectory) && isDirectory.boolValue)
        // The new manifest lists only what this render wrote.
        let now = try String(contentsOfFile: out + "/" + RenderedTree.manifestName, encoding: .utf8)
        #expect(now == "a/etc/new.yml\nplan.txt\nplan.json\n")
    }
}
