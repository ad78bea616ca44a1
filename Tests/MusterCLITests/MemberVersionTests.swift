import Foundation
import Testing
import MusterTestSupport

/// `render` asks `member.binary --version`; what it prints goes into install paths and the unit,
/// so anything but MAJOR.MINOR.PATCH is refused at member's place in the inventory, exit 2,
/// before any file is written (finding 7 of issue 19).
@Suite struct MemberVersionTests {
    @Test(arguments: [
        "etcd Version: 3.4.23/../../../../usr/local/sbin/x",
        "etcd Version: 3.4.23 ; reboot",
        "etcd Version: ../3.4.23",
        "etcd Version: 3.4.23\u{1B}[2J",
    ])
    func aHostileVersionIsRefused(_ printed: String) throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-version")
        let etcd = directory.path + "/etcd"
        try Data("#!/bin/sh\nprintf '%s\\n' '\(printed)'\n".utf8).write(to: URL(fileURLWithPath: etcd))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: etcd)
        let inventory = directory.path + "/inventory.yml"
        try Data("hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: \(etcd) }\nclusters:\n  main: { members: [a], tls: false }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        let run = try binary.run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.hasPrefix("\(inventory):3:"), "\(run)")
        #expect(!run.stderrText.unicodeScalars.contains { $0.value == 0x1B }, "a control character reached the terminal")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/out"), "files were written")
    }

    @Test func anHonestVersionRenders() throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-version")
        let etcd = directory.path + "/etcd"
        try Data("#!/bin/sh\necho 'etcd Version: 3.4.23'\n".utf8).write(to: URL(fileURLWithPath: etcd))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: etcd)
        let inventory = directory.path + "/inventory.yml"
        try Data("hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: \(etcd) }\nclusters:\n  main: { members: [a], tls: false }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        let run = try binary.run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(run.status == 0, "\(run)")
    }
}

/// `render` checks each cluster's `etcd:` keys against its members' line: a key the line removed
/// exits 2 at its place naming what replaced it; a line muster does not know exits 2 at the
/// `member:` that names it. Nothing is written.
@Suite struct VersionLineRenderTests {
    /// The directory is removed when the last reference to it goes: callers keep `directory`.
    private func render(_ text: String) throws -> (run: MusterBinary.Run, inventory: String, out: String, directory: TemporaryDirectory) {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-lines")
        let inventory = directory.path + "/inventory.yml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: inventory))
        let out = directory.path + "/out"
        let run = try binary.run(["render", inventory, "--out", out, "--state", directory.path + "/state"])
        return (run, inventory, out, directory)
    }

    @Test func aKey37RemovedExits2AtItsPlaceNamingItsReplacement() throws {
        let (run, inventory, out, directory) = try render("member: { version: 3.7.1 }\nhosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main:\n    members: [a]\n    etcd:\n      experimental-initial-corrupt-check: true\n")
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.hasPrefix("\(inventory):8:7: error: etcd key 'experimental-initial-corrupt-check' of cluster 'main' is gone in etcd 3.7"), "\(run)")
        #expect(run.stderrText.contains("replaced by feature-gates: InitialCorruptCheck=true"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: out), "files were written")
        withExtendedLifetime(directory) {}
    }

    @Test func the36NameOfTheSameKeyRendersAsAFeatureGate() throws {
        let (run, _, out, directory) = try render("member: { version: 3.6.14 }\nhosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main:\n    members: [a]\n    etcd:\n      experimental-initial-corrupt-check: true\n")
        #expect(run.status == 0, "\(run)")
        let conf = try String(contentsOfFile: out + "/a/etc/etcd/main/conf.yml", encoding: .utf8)
        #expect(conf.contains("feature-gates: InitialCorruptCheck=true") && !conf.contains("experimental-"), "\(conf)")
        withExtendedLifetime(directory) {}
    }

    @Test func aLineMusterDoesNotKnowExits2AtItsMember() throws {
        let (run, inventory, out, directory) = try render("hosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main:\n    members: [a]\n    member: { version: 3.8.0 }\n")
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.hasPrefix("\(inventory):6:13: error: cluster 'main': etcd 3.8.0 is not a line muster knows (3.4, 3.5, 3.6, 3.7)"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: out), "files were written")
        withExtendedLifetime(directory) {}
    }
}
