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
