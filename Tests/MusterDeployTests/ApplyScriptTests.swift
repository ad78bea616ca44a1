import Foundation
import Testing
import MusterBasics
import MusterPlan
@testable import MusterDeploy

/// The apply script run by a local shell on a scratch directory: what lands, with which modes,
/// and that a failed step stops the script and leaves no temporary behind.
@Suite struct ApplyScriptTests {
    private func scratch() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-apply-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    @Test func filesLandWithTheirModesAndNothingElseStays() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var script = ApplyScript()
        let tricky = "name: it's \"quoted\" $HOME `uname` \\\\n\nlast line without newline"
        script.write(RenderedFile(host: "h", path: "\(root)/etc/conf.yml", contents: tricky, mode: 0o644))
        script.write(RenderedFile(host: "h", path: "\(root)/etc/pki/server.key", contents: "KEY\n", mode: 0o600, owner: "root:root"))
        script.write(RenderedFile(host: "h", path: "\(root)/etc/start.sh", contents: "#!/bin/sh\necho started\n", mode: 0o755))
        let result = try LocalProcess.run(["/bin/sh", "-c", script.text], input: script.input)
        #expect(result.succeeded, "\(result.stderrText)")
        #expect(try String(contentsOfFile: "\(root)/etc/conf.yml", encoding: .utf8) == tricky)
        #expect(try mode("\(root)/etc/conf.yml") == 0o644)
        #expect(try mode("\(root)/etc/pki/server.key") == 0o600)
        #expect(try mode("\(root)/etc/start.sh") == 0o755)
        #expect(try LocalProcess.run(["\(root)/etc/start.sh"]).stdoutText == "started\n")
        let left = try LocalProcess.run(["find", root, "-name", "*.tmp.muster"]).stdoutText
        #expect(left.isEmpty, "temporaries left: \(left)")
    }

    @Test func aFailedStepStopsTheScriptAndRemovesTemporaries() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // The target's directory is a regular file: the write fails, nothing after it runs.
        try Data("in the way".utf8).write(to: URL(fileURLWithPath: "\(root)/blocked"))
        var script = ApplyScript()
        script.write(RenderedFile(host: "h", path: "\(root)/ok/first.yml", contents: "a\n", mode: 0o644))
        script.write(RenderedFile(host: "h", path: "\(root)/blocked/second.yml", contents: "b\n", mode: 0o644))
        let result = try LocalProcess.run(["/bin/sh", "-c", script.text])
        #expect(!result.succeeded)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/ok/first.yml"), "no file is renamed into place once a step failed")
        let left = try LocalProcess.run(["find", root, "-name", "*.tmp.muster"]).stdoutText
        #expect(left.isEmpty, "temporaries left: \(left)")
    }

    /// A scratch root holding "old binary" at `bin/etcd`, and a script that receives 100,000 bytes
    /// of 0x7f from its stdin to replace it.
    private func binaryOverAnOldOne() throws -> (root: String, target: String, binary: ShippedBinary, script: ApplyScript) {
        let root = try scratch()
        let source = "\(root)/etcd-source"
        try Data(repeating: 0x7f, count: 100_000).write(to: URL(fileURLWithPath: source))
        let target = "\(root)/bin/etcd"
        try FileManager.default.createDirectory(atPath: "\(root)/bin", withIntermediateDirectories: true)
        try Data("old binary".utf8).write(to: URL(fileURLWithPath: target))
        let binary = try ShippedBinary(localPath: source, remotePath: target)
        var script = ApplyScript()
        script.receive(BinaryDelivery(binary: binary, payload: Data(), compressed: false))
        return (root, target, binary, script)
    }

    @Test func aBinaryCutOffInTransitNeverReplacesTheOldOne() throws {
        let (root, target, binary, script) = try binaryOverAnOldOne()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // The stream ends after 60 000 of 100 000 bytes, as when a connection drops.
        let result = try LocalProcess.run(["/bin/sh", "-c", script.text], input: Data(repeating: 0x7f, count: 60_000))
        #expect(!result.succeeded)
        #expect(result.stderrText.contains("received 60000 bytes with sha256"), "\(result.stderrText)")
        #expect(result.stderrText.contains("expected 100000 bytes with sha256 \(binary.sha256)"), "\(result.stderrText)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "old binary")
        #expect(try LocalProcess.run(["find", root, "-name", "*.tmp.muster"]).stdoutText.isEmpty)
    }

    /// Bytes of the right length but not the right content (damaged on the way, or a cache
    /// copy altered to unpack to something else) are refused as well: the hash decides.
    @Test func bytesOfTheRightLengthButTheWrongHashAreNotInstalled() throws {
        let (root, target, binary, script) = try binaryOverAnOldOne()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var corrupted = Data(repeating: 0x7f, count: 100_000)
        corrupted[50_000] = 0x00
        let result = try LocalProcess.run(["/bin/sh", "-c", script.text], input: corrupted)
        #expect(!result.succeeded)
        #expect(result.stderrText.contains("received 100000 bytes with sha256 \(Digest.sha256Hex(corrupted))"), "\(result.stderrText)")
        #expect(result.stderrText.contains("not installed"), "\(result.stderrText)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "old binary")
        #expect(try LocalProcess.run(["find", root, "-name", "*.tmp.muster"]).stdoutText.isEmpty)

        // The same script with the right bytes installs them.
        let good = try LocalProcess.run(["/bin/sh", "-c", script.text], input: Data(repeating: 0x7f, count: 100_000))
        #expect(good.succeeded, "\(good.stderrText)")
        #expect(try Digest.sha256Hex(fileAt: target) == binary.sha256)
    }

    @Test func privateFilesTravelOnStdinBeforeTheBinaryNeverInTheScript() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let source = "\(root)/etcd-source"
        let binaryBytes = Data((0..<50_000).map { UInt8($0 % 251) })
        try binaryBytes.write(to: URL(fileURLWithPath: source))
        let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49 it's \"$HOME\"\n-----END PRIVATE KEY-----\n"
        var script = ApplyScript()
        script.write(RenderedFile(host: "h", path: "\(root)/pki/server.key", contents: key, mode: 0o600))
        script.write(RenderedFile(host: "h", path: "\(root)/pki/server.crt", contents: "CERT\n", mode: 0o644))
        script.write(RenderedFile(host: "h", path: "\(root)/pki/peer.key", contents: "second key\n", mode: 0o600))
        script.receive(BinaryDelivery(binary: try ShippedBinary(localPath: source, remotePath: "\(root)/bin/etcd"),
                                      payload: binaryBytes, compressed: false))
        #expect(!script.text.contains("PRIVATE KEY") && !script.text.contains("second key"), "\(script.text)")
        #expect(script.text.contains("CERT"), "public files stay in the script")
        let result = try LocalProcess.run(["/bin/sh", "-c", script.text], input: script.input)
        #expect(result.succeeded, "\(result.stderrText)")
        #expect(try String(contentsOfFile: "\(root)/pki/server.key", encoding: .utf8) == key)
        #expect(try String(contentsOfFile: "\(root)/pki/peer.key", encoding: .utf8) == "second key\n")
        #expect(try mode("\(root)/pki/peer.key") == 0o600)
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(root)/bin/etcd")) == binaryBytes)

        // Cut inside the keys: the script stops, no key is renamed into place.
        try FileManager.default.removeItem(atPath: "\(root)/pki")
        let cut = try LocalProcess.run(["/bin/sh", "-c", script.text], input: Data(key.utf8.prefix(20)))
        #expect(!cut.succeeded)
        #expect(cut.stderrText.contains("stdin ended early"), "\(cut.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/pki/server.key"))
    }
}
