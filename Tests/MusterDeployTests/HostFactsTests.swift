import Testing
@testable import MusterDeploy

/// Preflight reads listening ports from `ss` where it exists and from /proc/net/tcp otherwise.
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
}
