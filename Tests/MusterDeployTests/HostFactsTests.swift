import Foundation
import Testing
import MusterBasics
import MusterTestSupport
@testable import MusterDeploy

/// Preflight's facts script, run by a real local shell where it can be, and its parsing.
@Suite struct HostFactsTests {
    @Test func listeningPortsFromEitherSource() {
        let fromSS = HostFacts.parse("arch x86_64\nport 2379\nport 22\nport 2380\n")
        #expect(fromSS.listeningPorts == [22, 2379, 2380])
        #expect(fromSS.architecture == "x86_64")
        // /proc/net/tcp: local address in hex, state 0A (listen) already filtered by awk.
        let fromProc = HostFacts.parse("listen 00000000:094B\nlisten 0100007F:0016\n")
        #expect(fromProc.listeningPorts == [2379, 22])
    }

    @Test func theScriptPrefersSSAndQuotesEveryPath() {
        let script = HostFacts.script(for: [], files: ["/etc/etcd/it's/conf.yml"], directories: [])
        #expect(script.contains("command -v ss"))
        #expect(script.contains("'/etc/etcd/it'\\''s/conf.yml'"))
    }

    /// Files, directories, free space and parents' modes of a scratch tree, as a shell on this
    /// machine reports them through one command per kind of fact.
    @Test func aLocalShellReportsFilesDirectoriesSpaceAndParents() throws {
        let directory = try TemporaryDirectory(prefix: "muster-facts")
        let root = directory.path + "/with space"
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let config = root + "/etc/conf.yml", key = root + "/etc/it's.key"
        try Data("name: a\n".utf8).write(to: URL(fileURLWithPath: config))
        try Data("KEY".utf8).write(to: URL(fileURLWithPath: key))
        chmod(key, 0o600)
        let missing = root + "/etc/missing.yml"
        let data = root + "/var/lib/etcd/main"
        let script = HostFacts.script(for: [], files: [config, key, missing], directories: [root + "/etc", root + "/var"],
                                      spaces: [data, config], etcdReaches: [data])
        let result = try LocalProcess.run(["/bin/sh", "-c", script])
        #expect(result.succeeded, "\(result.stderrText)")
        let facts = HostFacts.parse(result.stdoutText)

        #expect(facts.files[config]?.sha256 == Digest.sha256Hex(Data("name: a\n".utf8)))
        #expect(facts.files[config]?.mode == "644")
        #expect(facts.files[key]?.sha256 == Digest.sha256Hex(Data("KEY".utf8)))
        #expect(facts.files[key]?.mode == "600")
        #expect(facts.files[missing] == nil)
        #expect(facts.existingDirectories == [root + "/etc"])
        #expect(facts.freeKilobytes > 0)
        // The data dir does not exist: its figure is that of its nearest existing parent.
        #expect(facts.freeKilobytesAt[data] ?? 0 > 0)
        #expect(facts.freeKilobytesAt[config] ?? 0 > 0)
        // Parents that exist are reported with mode and owner; the ones missing are not.
        #expect(facts.directoryAccess[root]?.owner == "root")
        #expect(facts.directoryAccess[directory.path] != nil)
        #expect(facts.directoryAccess[root + "/var"] == nil)
    }

    @Test func membersClocksAreTheHostsOwn() {
        let output = """
            now 1000.50
            uptime 300.25
            clktck 100
            main pid 42
            main startticks 20000
            main mtime 990.20
            main mtime 995.00
            other mtime 100.00
            spacefor /var/lib/etcd/main
            spaceavail 5000
            spaceavail 4000
            """
        let facts = HostFacts.parse(output)
        // Started at 200 s of uptime, now 300.25: 100.25 s ago; the newest file 5.5 s ago.
        #expect(facts.members["main"]?.startedSecondsAgo == 100.25)
        #expect(facts.members["main"]?.filesChangedSecondsAgo == 5.5)
        #expect(facts.members["main"]?.runsOnOlderFiles == true)
        #expect(facts.members["other"]?.startedSecondsAgo == nil)
        #expect(facts.freeKilobytes == 5000)
        #expect(facts.freeKilobytesAt["/var/lib/etcd/main"] == 4000)
        // A df row missing: no path gets another's figure.
        let short = HostFacts.parse("spacefor /a\nspacefor /b\nspaceavail 10\nspaceavail 20\n")
        #expect(short.freeKilobytesAt.isEmpty)
    }
}
