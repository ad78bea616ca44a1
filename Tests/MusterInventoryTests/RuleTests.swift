import Foundation
import Testing
@testable import MusterInventory

// Every rule of Loader.swift, MappingReader.swift and Checks.swift, each broken once. The
// inventories are built from a few lines so the line and column of each case can be counted by
// eye: `hostA` is line 2 (`  a: { address: 10.0.0.1 }`, address value at column 17).

private let hostA = "hosts:\n  a: { address: 10.0.0.1 }\n"
/// Line 4: `  main: { members: [a], tls: false }`; a key added after `false` starts at column 37.
private func flowCluster(_ extra: String = "") -> String {
    "clusters:\n  main: { members: [a], tls: false\(extra.isEmpty ? "" : ", " + extra) }\n"
}
/// Lines 3-7, the bootstrap value at 7:16.
private func blockCluster(bootstrap: String) -> String {
    "clusters:\n  main:\n    members: [a]\n    tls: false\n    bootstrap: \(bootstrap)\n"
}
private func inventoryWith(_ top: String) -> String { top + hostA + flowCluster() }

@Suite struct LoaderRuleTests {
    static let cases: [RuleCase] = [
        RuleCase("top-level unknown key", "hostz: {}\n" + hostA + flowCluster(), at: 1, 1, "unknown key 'hostz' in the inventory; did you mean 'hosts'?"),
        RuleCase("the inventory is a mapping", "- a\n", at: 1, 1, "the inventory must be a mapping, found a list"),
        RuleCase("the inventory is not empty", "# nothing here\n", at: 1, 1, "the inventory is empty"),
        RuleCase("hosts are required", flowCluster(), at: 1, 1, "the inventory needs a 'hosts' mapping"),
        RuleCase("clusters are required", hostA, at: 1, 1, "the inventory needs a 'clusters' mapping"),

        RuleCase("ssh: unknown key", inventoryWith("ssh:\n  usr: root\n"), at: 2, 3, "unknown key 'usr' in ssh; did you mean 'user'?"),
        RuleCase("ssh: user name", inventoryWith("ssh:\n  user: Root\n"), at: 2, 9, "'Root' is not a valid user name"),
        RuleCase("ssh: user with a shell word", inventoryWith("ssh:\n  user: 'root;reboot'\n"), at: 2, 9, "'root;reboot' is not a valid user name"),
        RuleCase("ssh: user with a newline", inventoryWith(#"ssh: { user: "root\n" }"# + "\n"), at: 1, 14, "'user' in ssh holds the control character U+000A"),
        RuleCase("ssh: port range", inventoryWith("ssh:\n  port: 0\n"), at: 2, 9, "SSH port 0 is out of range 1-65535"),
        RuleCase("ssh: connect_timeout range", inventoryWith("ssh:\n  connect_timeout: 301\n"), at: 2, 20, "connect_timeout must be 1-300 seconds"),
        RuleCase("ssh: identity without controls", inventoryWith(#"ssh: { identity: "/k\e[2J" }"# + "\n"), at: 1, 18, "'identity' in ssh holds the control character U+001B"),
        RuleCase("ssh: known_hosts without NUL", inventoryWith(#"ssh: { known_hosts: "/k\0x" }"# + "\n"), at: 1, 21, "'known_hosts' in ssh holds the control character U+0000"),
        RuleCase("ssh: a boolean is no string", inventoryWith("ssh:\n  user: yes\n"), at: 2, 9, "'user' in ssh must be a string, found a boolean (quote it)"),
        RuleCase("ssh: a list is no string", inventoryWith("ssh:\n  user: [a]\n"), at: 2, 9, "'user' in ssh must be a string, found a list"),
        RuleCase("ssh: a mapping", inventoryWith("ssh: root\n"), at: 1, 6, "ssh must be a mapping, found a string"),

        RuleCase("member: unknown key", inventoryWith("member:\n  versoin: 3.4.23\n"), at: 2, 3, "unknown key 'versoin' in member; did you mean 'version'?"),
        RuleCase("member: version shape", inventoryWith("member:\n  version: '3.4'\n"), at: 2, 12, "member version '3.4' is not like 3.4.23"),
        RuleCase("member: supervisor", inventoryWith("member:\n  supervisor: Systemd\n"), at: 2, 15, "supervisor 'Systemd' must be one of: auto, systemd, process"),
        RuleCase("member: version with a newline", inventoryWith(#"member: { version: "3.4.23\n" }"# + "\n"), at: 1, 20, "'version' in member holds the control character U+000A"),
        RuleCase("member: binary without controls", inventoryWith(#"member: { binary: "/usr/bin/etcd\n" }"# + "\n"), at: 1, 19, "'binary' in member holds the control character U+000A"),
        RuleCase("member: etcdctl without controls", inventoryWith(#"member: { etcdctl: "/x\r" }"# + "\n"), at: 1, 20, "'etcdctl' in member holds the control character U+000D"),

        RuleCase("host: name", "hosts:\n  'a b': { address: 10.0.0.1 }\n" + flowCluster(), at: 2, 3, "host name 'a b' must be letters, digits"),
        RuleCase("host: name with a final newline", "hosts:\n  \"a\\n\": { address: 10.0.0.1 }\n" + flowCluster(), at: 2, 3, "host name 'a\u{240A}' must be letters"),
        RuleCase("host: a mapping", "hosts:\n  a: 10.0.0.1\n" + flowCluster(), at: 2, 6, "host 'a' must be a mapping, found a string"),
        RuleCase("host: unknown key", "hosts:\n  a: { address: 10.0.0.1, adress: x }\n" + flowCluster(), at: 2, 27, "unknown key 'adress' in host 'a'; did you mean 'address'?"),
        RuleCase("host: address required", "hosts:\n  a: { fqdn: a.example }\n" + flowCluster(), at: 2, 6, "host 'a' needs an 'address'"),
        RuleCase("host: address is an IP", "hosts:\n  a: { address: a.example }\n" + flowCluster(), at: 2, 17, "address 'a.example' of host 'a' is not an IPv4 or IPv6 address"),
        RuleCase("host: address with NUL", "hosts:\n  a: { address: \"10.0.0.1\\0; reboot\" }\n" + flowCluster(), at: 2, 17, "'address' in host 'a' holds the control character U+0000"),
        RuleCase("host: fqdn", "hosts:\n  a: { address: 10.0.0.1, fqdn: 'a..b' }\n" + flowCluster(), at: 2, 33, "fqdn 'a..b' of host 'a' is not a valid DNS name"),
        RuleCase("host: supervisor", "hosts:\n  a: { address: 10.0.0.1, supervisor: runit }\n" + flowCluster(), at: 2, 39, "supervisor 'runit' must be one of: auto, systemd, process"),
        RuleCase("host: fqdn with a shell word", "hosts:\n  a: { address: 10.0.0.1, fqdn: '`reboot`.x' }\n" + flowCluster(), at: 2, 33, "fqdn '`reboot`.x' of host 'a' is not a valid DNS name"),
        RuleCase("host: its own ssh is checked", "hosts:\n  a: { address: 10.0.0.1, ssh: { port: 99999 } }\n" + flowCluster(), at: 2, 40, "SSH port 99999 is out of range"),
        RuleCase("hosts: keys are strings", "hosts:\n  [a]: { address: 10.0.0.1 }\n" + flowCluster(), at: 2, 3, "keys in hosts must be plain strings"),
        RuleCase("hosts: a mapping", "hosts: [a]\n" + flowCluster(), at: 1, 8, "hosts must be a mapping, found a list"),

        RuleCase("dns: unknown key", hostA + "dns: { server: a, domain: example.test, resolvers: true }\n" + flowCluster(), at: 3, 41, "unknown key 'resolvers' in dns"),
        RuleCase("dns: server required", hostA + "dns: { domain: example.test }\n" + flowCluster(), at: 3, 6, "dns needs a 'server'"),
        RuleCase("dns: domain required", hostA + "dns: { server: a }\n" + flowCluster(), at: 3, 6, "dns needs a 'domain'"),
        RuleCase("dns: domain shape", hostA + "dns: { server: a, domain: -bad }\n" + flowCluster(), at: 3, 27, "dns domain '-bad' is not a valid DNS name"),
        RuleCase("dns: domain with a newline", hostA + "dns: { server: a, domain: \"example.test\\n\" }\n" + flowCluster(), at: 3, 27, "'domain' in dns holds the control character U+000A"),
        RuleCase("dns: configure_resolvers is a boolean", hostA + "dns: { server: a, domain: example.test, configure_resolvers: 1 }\n" + flowCluster(), at: 3, 62, "'configure_resolvers' in dns must be true or false, found an integer"),

        RuleCase("paths: unknown key", hostA + flowCluster() + "paths:\n  dta: /x\n", at: 6, 3, "unknown key 'dta' in paths; did you mean 'data'?"),
        RuleCase("paths: absolute", hostA + flowCluster() + "paths:\n  data: var/lib\n", at: 6, 9, "path 'var/lib' must be absolute"),
        RuleCase("paths: no '..'", hostA + flowCluster() + "paths:\n  data: /var/../etc\n", at: 6, 9, "path '/var/../etc' must be absolute"),
        RuleCase("paths: no shell words", hostA + flowCluster() + "paths:\n  data: '/var/$(reboot)'\n", at: 6, 9, "path '/var/$(reboot)' must be absolute"),
        RuleCase("paths: config inside data", hostA + flowCluster() + "paths:\n  data: /srv/etcd\n  config: /srv/etcd/conf\n", at: 7, 11,
                 "paths.config (/srv/etcd/conf) lies in paths.data (/srv/etcd)"),
        RuleCase("paths: data above a default root path", hostA + flowCluster() + "paths:\n  data: /etc\n", at: 6, 9,
                 "paths.config (/etc/etcd) lies in paths.data (/etc)"),
        RuleCase("paths: run under log", hostA + flowCluster() + "paths:\n  log: /var/log/etcd\n  run: /var/log/etcd/run\n", at: 7, 8,
                 "paths.run (/var/log/etcd/run) lies in paths.log (/var/log/etcd)"),
        RuleCase("paths: config equal to data", hostA + flowCluster() + "paths:\n  config: /var/lib/etcd\n", at: 6, 11,
                 "paths.config (/var/lib/etcd) lies in paths.data (/var/lib/etcd)"),
        RuleCase("paths: no newline", hostA + flowCluster() + "paths:\n  data: \"/var/lib\\n\"\n", at: 6, 9, "'data' in paths holds the control character U+000A"),

        RuleCase("cluster: name", hostA + "clusters:\n  Main: { members: [a], tls: false }\n", at: 4, 3, "cluster name 'Main' must be lowercase letters"),
        RuleCase("cluster: name with a final newline", hostA + "clusters:\n  \"main\\n\": { members: [a], tls: false }\n", at: 4, 3, "cluster name 'main\u{240A}' must be"),
        RuleCase("cluster: a mapping", hostA + "clusters:\n  main: [a]\n", at: 4, 9, "cluster 'main' must be a mapping, found a list"),
        RuleCase("cluster: members required", hostA + "clusters:\n  main: { tls: false }\n", at: 4, 3, "cluster 'main' needs 'members'"),
        RuleCase("cluster: members not empty", hostA + "clusters:\n  main: { members: [], tls: false }\n", at: 4, 20, "cluster 'main' has no members"),
        RuleCase("cluster: members a list", hostA + "clusters:\n  main: { members: a, tls: false }\n", at: 4, 20, "'members' in cluster 'main' must be a list, found a string"),
        RuleCase("cluster: members are names", hostA + "clusters:\n  main: { members: [[a]], tls: false }\n", at: 4, 21, "items of 'members' in cluster 'main' must be names, found a list"),
        RuleCase("cluster: member without controls", hostA + "clusters:\n  main: { members: [\"a\\n\"], tls: false }\n", at: 4, 21, "an item of 'members' in cluster 'main' holds the control character U+000A"),
        RuleCase("cluster: peer_port range", hostA + flowCluster("peer_port: -1"), at: 4, 48, "peer_port -1 is out of range 1-65535"),
        RuleCase("cluster: port is an integer", hostA + flowCluster("peer_port: '2380'"), at: 4, 48, "'peer_port' in cluster 'main' must be an integer, found a string"),
        RuleCase("cluster: ports differ", hostA + flowCluster("peer_port: 2379"), at: 4, 48, "cluster 'main' uses port 2379 for both clients and peers"),
        RuleCase("cluster: token", hostA + flowCluster("token: 'a b'"), at: 4, 44, "token 'a b' must be letters, digits"),
        RuleCase("cluster: token with a shell word", hostA + flowCluster("token: '$(reboot)'"), at: 4, 44, "token '$(reboot)' must be letters"),
        RuleCase("cluster: token with a newline", hostA + flowCluster("token: \"tok\\n\""), at: 4, 44, "'token' in cluster 'main' holds the control character U+000A"),
        RuleCase("cluster: client_listen", hostA + flowCluster("client_listen: everywhere"), at: 4, 52, "client_listen must be 'address' or 'loopback', found 'everywhere'"),
        RuleCase("cluster: etcd unsafe key", hostA + flowCluster("etcd: { force-new-cluster: true }"), at: 4, 45,
                 "etcd key 'force-new-cluster' is unsafe: it makes the member a cluster of one at every start"),
        RuleCase("cluster: etcd no-fsync key", hostA + flowCluster("etcd: { unsafe-no-fsync: true }"), at: 4, 45,
                 "muster sets it only with --allow-unsafe-etcd-keys"),
        RuleCase("cluster: etcd options a mapping", hostA + flowCluster("etcd: [a]"), at: 4, 43, "etcd options of cluster 'main' must be a mapping, found a list"),
        RuleCase("cluster: etcd option a single value", hostA + flowCluster("etcd: { cors: [a] }"), at: 4, 51, "etcd key 'cors' must be a single value, found a list"),
        RuleCase("cluster: etcd option without line separators", hostA + flowCluster("etcd: { cors: \"a\\Lb\" }"), at: 4, 51, "etcd key 'cors' holds the control character U+2028"),
        RuleCase("cluster: etcd option without controls", hostA + flowCluster("etcd: { cors: \"a\\nb\" }"), at: 4, 51, "etcd key 'cors' holds the control character U+000A"),

        RuleCase("bootstrap: a mode name", hostA + blockCluster(bootstrap: "dynamic"), at: 7, 16, "bootstrap of cluster 'main' must be 'static', { discovery: ... } or { dns: ... }, found 'dynamic'"),
        RuleCase("bootstrap: unknown mode", hostA + blockCluster(bootstrap: "{ statik: {} }"), at: 7, 18, "unknown key 'statik' in bootstrap of cluster 'main'; did you mean 'static'?"),
        RuleCase("bootstrap: exactly one mode", hostA + blockCluster(bootstrap: "{ static: {}, dns: {} }"), at: 7, 16, "must name exactly one of static, discovery, dns"),
        RuleCase("bootstrap: a mapping", hostA + blockCluster(bootstrap: "[static]"), at: 7, 16, "bootstrap of cluster 'main' must be a mapping, found a list"),
        RuleCase("discovery: a mapping", hostA + blockCluster(bootstrap: "{ discovery: x }"), at: 7, 29, "discovery of cluster 'main' must be a mapping, found a string"),
        RuleCase("discovery: unknown key", hostA + blockCluster(bootstrap: "{ discovery: { url: http://10.0.0.9:2379, size: 1, ttl: 3 } }"), at: 7, 67, "unknown key 'ttl' in discovery of cluster 'main'"),
        RuleCase("discovery: exactly one source", hostA + blockCluster(bootstrap: "{ discovery: { size: 1 } }"), at: 7, 29, "needs exactly one of 'cluster', 'url', 'service'"),
        RuleCase("discovery: a null source is none", hostA + blockCluster(bootstrap: "{ discovery: { url: ~, size: 1 } }"), at: 7, 29, "needs exactly one of 'cluster', 'url', 'service'"),
        RuleCase("discovery: two sources", hostA + blockCluster(bootstrap: "{ discovery: { url: http://x, service: http://y, size: 1 } }"), at: 7, 29, "needs exactly one of 'cluster', 'url', 'service'"),
        RuleCase("discovery: url shape", hostA + blockCluster(bootstrap: "{ discovery: { url: 'http://x/$(reboot)', size: 1 } }"), at: 7, 36, "discovery URL 'http://x/$(reboot)' must be an http:// or https:// URL"),
        RuleCase("discovery: service shape", hostA + blockCluster(bootstrap: "{ discovery: { service: 'https://x/;reboot', size: 1 } }"), at: 7, 40, "discovery URL 'https://x/;reboot' must be"),
        RuleCase("discovery: url without a newline", hostA + blockCluster(bootstrap: "{ discovery: { url: \"http://10.0.0.9:2379\\n\", size: 1 } }"), at: 7, 36, "'url' in discovery of cluster 'main' holds the control character U+000A"),
        RuleCase("discovery: size required", hostA + blockCluster(bootstrap: "{ discovery: { url: http://10.0.0.9:2379 } }"), at: 7, 29, "discovery of cluster 'main' needs a 'size'"),
        RuleCase("discovery: size an integer", hostA + blockCluster(bootstrap: "{ discovery: { url: http://10.0.0.9:2379, size: many } }"), at: 7, 64, "'size' in discovery of cluster 'main' must be an integer, found a string"),
        RuleCase("discovery: proxy shape", hostA + blockCluster(bootstrap: "{ discovery: { url: http://10.0.0.9:2379, size: 1, proxy: 'ftp://x' } }"), at: 7, 74, "discovery proxy 'ftp://x' must be an http:// URL"),
        RuleCase("dns bootstrap: a domain somewhere", hostA + blockCluster(bootstrap: "{ dns: {} }"), at: 7, 23, "DNS bootstrap of cluster 'main' needs a domain, and the inventory has no 'dns' section"),
        RuleCase("dns bootstrap: a mapping", hostA + blockCluster(bootstrap: "{ dns: [x] }"), at: 7, 23, "dns bootstrap of cluster 'main' must be a mapping, found a list"),
        RuleCase("dns bootstrap: domain shape", hostA + blockCluster(bootstrap: "{ dns: { domain: 'a_b' } }"), at: 7, 33, "DNS domain 'a_b' is not a valid DNS name"),
        RuleCase("dns bootstrap: service_name", hostA + blockCluster(bootstrap: "{ dns: { domain: example.test, service_name: 'a b' } }"), at: 7, 61, "service_name 'a b' must be letters, digits, '-' or '_'"),
    ]

    @Test(arguments: cases)
    func ruleIsEnforcedWhereItIsBroken(_ rule: RuleCase) {
        expectDiagnostic(diagnostics(of: rule.text), line: rule.line, column: rule.column, containing: rule.fragment)
    }

    @Test func numbersAreFineWhereAStringIsWanted() throws {
        let inventory = try InventoryLoader.parse(hostA + flowCluster("token: 1234"), file: "inv.yml")
        #expect(inventory.clusters.first?.token == "1234")
    }

    @Test func aliasesStillShareSettings() throws {
        let text = "hosts:\n  a: { address: 10.0.0.1, ssh: &custom { port: 2222, user: admin } }\n"
            + "  b: { address: 10.0.0.2, ssh: *custom }\n"
            + "clusters:\n  main: { members: [a, b], tls: false }\n"
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        #expect(inventory.host(named: "b")?.ssh.port == 2222)
        #expect(inventory.host(named: "b")?.ssh.user == "admin")
    }

    @Test func aMergeKeyIsAnUnknownKey() {
        // libyaml leaves `<<` to the application; muster does not merge, so it must say so.
        let text = "hosts:\n  a: { address: 10.0.0.1, ssh: { <<: { port: 2222 } } }\n" + flowCluster()
        expectDiagnostic(diagnostics(of: text), line: 2, column: 34, containing: "unknown key '<<' in ssh of host 'a'")
    }
}

@Suite struct CheckRuleTests {
    private static func discoveryFrom(_ backend: String, size: Int = 1) -> String {
        hostA + blockCluster(bootstrap: "{ discovery: { cluster: \(backend), size: \(size) } }")
            + "  seed: { members: [a], client_port: 3379, peer_port: 3380 }\n"
    }

    static let cases: [RuleCase] = [
        RuleCase("dns server is a host", hostA + "dns: { server: b, domain: example.test }\n" + flowCluster(), at: 3, 16, "dns server 'b' is not a host of this inventory"),
        RuleCase("discovery size at most 99", hostA + blockCluster(bootstrap: "{ discovery: { url: http://10.0.0.9:2379, size: 100 } }"), at: 7, 16, "discovery size 100 must be between 1 and 99"),
        RuleCase("discovery backend is another cluster", discoveryFrom("main"), at: 7, 16, "cluster 'main' cannot be its own discovery backend"),
        RuleCase("discovery backend exists", discoveryFrom("nope"), at: 7, 16, "discovery cluster 'nope' is not a cluster of this inventory"),
        RuleCase("fqdn under the DNS domain",
                 "hosts:\n  a: { address: 10.0.0.1, fqdn: a.other.test }\ndns: { server: a, domain: example.test }\n"
                    + "clusters:\n  main:\n    members: [a]\n    bootstrap: { dns: {} }\n",
                 at: 2, 3, "fqdn 'a.other.test' of host 'a' is not under the DNS domain 'example.test' of cluster 'main'"),
        RuleCase("peer ports clash on a shared host",
                 hostA + "clusters:\n  main: { members: [a], tls: false }\n  second: { members: [a], client_port: 3379, tls: false }\n",
                 at: 5, 3, "peer port 2380 of cluster 'second' on host 'a' is already used by the peer port of cluster 'main'"),
    ]

    @Test(arguments: cases)
    func ruleIsEnforcedWhereItIsBroken(_ rule: RuleCase) {
        expectDiagnostic(diagnostics(of: rule.text), line: rule.line, column: rule.column, containing: rule.fragment)
    }
}


@Suite struct UnsafeEtcdKeyTests {
    @Test func theOperatorsFlagLetsAnUnsafeKeyThrough() throws {
        let text = hostA + flowCluster("etcd: { unsafe-no-fsync: true, experimental-peer-skip-client-san-verification: true }")
        let inventory = try InventoryLoader.parse(text, file: "inv.yml", allowUnsafeEtcdKeys: true)
        #expect(inventory.clusters.first?.etcdOptions.map(\.key) == ["unsafe-no-fsync", "experimental-peer-skip-client-san-verification"])
        #expect(throws: InventoryError.self) { try InventoryLoader.parse(text, file: "inv.yml") }
    }
}
