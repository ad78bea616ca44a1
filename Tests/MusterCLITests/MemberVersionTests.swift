import Foundation
import Testing
import MusterTestSupport

/// `up` may ask a member binary whose bytes do not say its version `--version`; what it prints
/// goes into install paths and the unit, so anything but MAJOR.MINOR.PATCH is refused at member's
/// place in the inventory, exit 2, before any host or the state dir is touched (finding 7 of
/// issue 19). `render` executes nothing an inventory names (issue 28): it reads the version from
/// the binary's bytes or takes `member.version`.
@Suite struct MemberVersionTests {
    /// A directory with `etcd`, a shell script printing `printed` (after running `extra`), and
    /// an inventory naming it.
    private func scriptedBinary(printing printed: String, extra: String = "") throws -> (directory: TemporaryDirectory, etcd: String, inventory: String) {
        let directory = try TemporaryDirectory(prefix: "muster-version")
        let etcd = directory.path + "/etcd"
        try Data("#!/bin/sh\n\(extra)printf '%s\\n' '\(printed)'\n".utf8).write(to: URL(fileURLWithPath: etcd))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: etcd)
        let inventory = directory.path + "/inventory.yml"
        try Data("hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: \(etcd) }\nclusters:\n  main: { members: [a], tls: false }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        return (directory, etcd, inventory)
    }

    @Test(arguments: [
        "etcd Version: 3.4.23/../../../../usr/local/sbin/x",
        "etcd Version: 3.4.23 ; reboot",
        "etcd Version: ../3.4.23",
        "etcd Version: 3.4.23\u{1B}[2J",
    ])
    func aHostileVersionIsRefused(_ printed: String) throws {
        let (directory, _, inventory) = try scriptedBinary(printing: printed)
        let run = try MusterBinary().run(["up", inventory, "--dry-run", "--state", directory.path + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.hasPrefix("\(inventory):3:"), "\(run)")
        #expect(!run.stderrText.unicodeScalars.contains { $0.value == 0x1B }, "a control character reached the terminal")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/state"), "the state dir was made")
    }

    /// An inventory from a pull request may name any program as its etcd: `render` (the lint a CI
    /// runs) never runs it, and says how to render without reading it.
    @Test func renderRunsNoBinaryTheInventoryNames() throws {
        let (directory, etcd, inventory) = try scriptedBinary(printing: "etcd Version: 3.4.23", extra: "touch \"$0.RAN\"\n")
        let run = try MusterBinary().run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.hasPrefix("\(inventory):3:"), "\(run)")
        #expect(run.stderrText.contains("cannot read etcd's version from the bytes of \(etcd)") && run.stderrText.contains("set member.version"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: etcd + ".RAN"), "render ran the member binary")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/out"), "files were written")
        // With member.version the binary is not even read.
        try Data("hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: \(etcd), version: 3.4.23 }\nclusters:\n  main: { members: [a], tls: false }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        let pinned = try MusterBinary().run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(pinned.status == 0, "\(pinned)")
        #expect(!FileManager.default.fileExists(atPath: etcd + ".RAN"), "render ran the member binary")
    }

    /// The three real etcd binaries render with the version their bytes carry, none of them run
    /// (each is reached through a link whose directory holds no etcdctl, so a run would show in
    /// nothing but the version; the versions differ from any default).
    @Test(arguments: [("/usr/bin/etcd", "3.4.23"), ("/var/cache/muster/etcd-3.5/usr/bin/etcd", "3.5.16"),
                      ("/var/cache/muster/etcd-sid/usr/bin/etcd", "3.5.30")])
    func aRealBinarysVersionIsReadFromItsBytes(_ binary: String, _ version: String) throws {
        let directory = try TemporaryDirectory(prefix: "muster-version")
        let inventory = directory.path + "/inventory.yml"
        try Data("hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: \(binary) }\nclusters:\n  main: { members: [a], tls: false }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        let run = try MusterBinary().run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(run.status == 0, "\(run)")
        let plan = try String(contentsOfFile: directory.path + "/out/plan.json", encoding: .utf8)
        #expect(plan.contains("\"\(version)\""), "\(plan.prefix(600))")
    }

    /// `up` may run a binary its bytes say nothing of, but with nothing of muster's environment
    /// (the SSH key's passphrase above all) beyond a fixed PATH.
    @Test func upAsksABinaryInAScrubbedEnvironment() throws {
        let (directory, etcd, inventory) = try scriptedBinary(printing: "etcd Version: unknown", extra: "env > \"$0.ENV\"\n")
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_SSH_PASSPHRASE"] = "hunter2-secret"
        let run = try MusterBinary().run(["up", inventory, "--dry-run", "--state", directory.path + "/state"], environment: environment)
        #expect(run.status == 2, "\(run)")
        let seen = try String(contentsOfFile: etcd + ".ENV", encoding: .utf8)
        let names = Set(seen.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        #expect(!seen.contains("hunter2-secret"), "\(seen)")
        #expect(names.isSubset(of: ["PATH", "LC_ALL", "PWD", "SHLVL", "_"]), "\(names)")
        #expect(seen.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "\(seen)")
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
