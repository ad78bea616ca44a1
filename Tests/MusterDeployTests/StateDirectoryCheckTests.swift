import Foundation
import MusterBasics
import MusterTestSupport
import MusterWorkspace
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A state dir another user could have written (its CA, records, backups, trusted by a root
/// run) is refused before anything is read from it or written to it.
@Suite struct StateDirectoryCheckTests {
    private func refusal(_ directory: String) -> String? {
        do {
            try StateDirectoryCheck.check(directory)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func theOperatorsOwnDirectoryPasses() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(refusal(root + "/missing/state") == nil, "a state dir muster will make itself")
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        chmod(root + "/state", 0o755)
        #expect(refusal(root + "/state") == nil, "readable by others, writable by its owner alone")
        // /tmp: world-writable with the sticky bit, only the owner can replace what is in it.
        #expect(refusal("/tmp/muster-state-\(UUID().uuidString)") == nil)
    }

    @Test func aDirectoryOthersCanWriteIsRefused() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        chmod(root + "/state", 0o777)
        #expect(refusal(root + "/state")?.contains("has mode 777: group or others can write it") == true)
    }

    @Test func aDirectoryOfAnotherUserIsRefused() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        #expect(chown(root + "/state", 65534, 65534) == 0, "the tests run as root")
        #expect(refusal(root + "/state")?.contains("belongs to uid 65534") == true)
    }

    @Test func aSymbolicLinkIsRefused() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/state", withDestinationPath: root + "/elsewhere")
        #expect(refusal(root + "/state")?.contains("is not a directory") == true)
    }

    @Test func aParentOthersCanWriteWithoutTheStickyBitIsRefused() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/shared", withIntermediateDirectories: true)
        chmod(root + "/shared", 0o775)
        #expect(refusal(root + "/shared/state")?.contains("which group or others can write without the sticky bit") == true)
        chmod(root + "/shared", 0o1777)
        #expect(refusal(root + "/shared/state") == nil)
    }

    /// Through the command line: exit 2 naming the directory, nothing written.
    @Test func renderRefusesAndWritesNothing() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-state-check")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let inventory = root + "/inventory.yml"
        try """
            member: { version: 3.4.23 }
            hosts: { h1: { address: 10.0.0.1 } }
            clusters: { main: { members: [h1], tls: false, bootstrap: { discovery: { url: "http://10.0.0.9:2379", size: 1 } } } }

            """.write(toFile: inventory, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        chmod(root + "/state", 0o777)
        let muster = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/muster").path
        let run = try LocalProcess.run([muster, "render", inventory, "--state", root + "/state", "--out", root + "/out"], timeout: 60)
        #expect(run.status == 2, "\(run.stderrText)")
        #expect(run.stderrText.contains("state dir \(root)/state has mode 777"), "\(run.stderrText)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/state").isEmpty, "a token was written")
        #expect(!FileManager.default.fileExists(atPath: root + "/out"))
    }
}
