import Foundation
import Testing
@testable import MusterInventory

/// A valid inventory that each test breaks in one way.
private let valid = """
ssh:
  user: root
hosts:
  etcd1: { address: 10.0.0.1 }
  etcd2: { address: 10.0.0.2 }
  etcd3: { address: 10.0.0.3 }
clusters:
  main:
    members: [etcd1, etcd2, etcd3]
    tls: false
    bootstrap: static

"""

/// The diagnostics for `text`, or an issue when it loads cleanly.
private func diagnostics(_ text: String) -> [Diagnostic] {
    do {
        _ = try InventoryLoader.parse(text, file: "inv.yml")
        Issue.record("expected errors, the inventory loaded")
        return []
    } catch let error as InventoryError {
        return error.diagnostics
    } catch {
        Issue.record("unexpected error \(error)")
        return []
    }
}

private func expectOne(_ text: String, line: Int, column: Int, containing fragment: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    let found = diagnostics(text)
    #expect(found.contains { $0.mark == .init(line: line, column: column) && $0.message.contains(fragment) },
            "no '\(fragment)' at \(line):\(column) in \(found.map(\.description))", sourceLocation: sourceLocation)
}

@Suite struct InventoryValidationTests {
    @Test func validInventoryLoads() throws {
        let inventory = try InventoryLoader.parse(valid, file: "inv.yml")
        #expect(inventory.clusters.first?.members == ["etcd1", "etcd2", "etcd3"])
        #expect(inventory.clusters.first?.tls == false)
        #expect(inventory.clusters.first?.clientPort == 2379)
    }

    @Test func tlsDefaultsToOn() throws {
        let inventory = try InventoryLoader.parse(valid.replacingOccurrences(of: "    tls: false\n", with: ""), file: "inv.yml")
        #expect(inventory.clusters.first?.tls == true)
    }

    @Test func syntaxError() {
        expectOne("hosts: [a,\nclusters: {}\n", line: 3, column: 1, containing: "while parsing a flow sequence (started at 1:8)")
    }

    @Test func duplicateKey() {
        let text = valid.replacingOccurrences(of: "  etcd3: { address: 10.0.0.3 }\n",
                                              with: "  etcd3: { address: 10.0.0.3 }\n  etcd1: { address: 10.0.0.9 }\n")
        expectOne(text, line: 7, column: 3, containing: "duplicate key 'etcd1' in hosts (first defined at 4:3)")
    }

    @Test func unknownKeyWithSuggestion() {
        expectOne(valid.replacingOccurrences(of: "    tls: false", with: "    tsl: false"),
                  line: 10, column: 5, containing: "unknown key 'tsl' in cluster 'main'; did you mean 'tls'?")
    }

    @Test func wrongType() {
        expectOne(valid.replacingOccurrences(of: "    tls: false", with: "    tls: maybe"),
                  line: 10, column: 10, containing: "'tls' in cluster 'main' must be true or false, found a string")
    }

    @Test func undefinedHost() {
        expectOne(valid.replacingOccurrences(of: "[etcd1, etcd2, etcd3]", with: "[etcd1, etcd2, etcd4]"),
                  line: 8, column: 3, containing: "names host 'etcd4', which is not defined")
    }

    @Test func hostListedTwice() {
        expectOne(valid.replacingOccurrences(of: "[etcd1, etcd2, etcd3]", with: "[etcd1, etcd2, etcd1]"),
                  line: 9, column: 29, containing: "host 'etcd1' is listed twice")
    }

    @Test func duplicateAddress() {
        expectOne(valid.replacingOccurrences(of: "10.0.0.3", with: "10.0.0.1"),
                  line: 6, column: 3, containing: "same address 10.0.0.1 as host 'etcd1'")
    }

    @Test func nameAShellWouldChokeOn() {
        expectOne(valid.replacingOccurrences(of: "  main:", with: "  'ma;in':"),
                  line: 8, column: 3, containing: "cluster name 'ma;in'")
    }

    @Test func badAddress() {
        expectOne(valid.replacingOccurrences(of: "10.0.0.2", with: "etcd2.example"),
                  line: 5, column: 21, containing: "is not an IPv4 or IPv6 address")
    }

    @Test func portOutOfRange() {
        expectOne(valid.replacingOccurrences(of: "    tls: false", with: "    tls: false\n    client_port: 70000"),
                  line: 11, column: 18, containing: "client_port 70000 is out of range")
    }

    @Test func portsClashOnASharedHost() {
        let text = valid + "  second:\n    members: [etcd1]\n    tls: false\n"
        expectOne(text, line: 12, column: 3, containing: "client port 2379 of cluster 'second' on host 'etcd1' is already used")
    }

    @Test func dnsBootstrapWithoutDNSSection() {
        expectOne(valid.replacingOccurrences(of: "bootstrap: static", with: "bootstrap: { dns: { domain: example.test } }"),
                  line: 11, column: 16, containing: "needs a top-level 'dns' section")
    }

    @Test func discoveryCycle() {
        let text = valid.replacingOccurrences(of: "bootstrap: static", with: "bootstrap: { discovery: { cluster: other, size: 3 } }")
            + "  other:\n    members: [etcd1]\n    client_port: 3379\n    peer_port: 3380\n    tls: false\n    bootstrap: { discovery: { cluster: main, size: 1 } }\n"
        expectOne(text, line: 11, column: 16, containing: "discovery cycle: main -> other -> main")
    }

    @Test func etcdOptionsAreCheckedAgainstEtcdKeys() {
        let text = valid.replacingOccurrences(of: "    tls: false", with: "    tls: false\n    etcd: { heartbeat-intervall: 100, name: x }")
        expectOne(text, line: 11, column: 13, containing: "'heartbeat-intervall' is not an etcd configuration key; did you mean 'heartbeat-interval'?")
        expectOne(text, line: 11, column: 39, containing: "etcd key 'name' is set by muster")
    }

    @Test func allErrorsAreReportedAtOnce() {
        let text = valid.replacingOccurrences(of: "10.0.0.2", with: "nope").replacingOccurrences(of: "    tls: false", with: "    tls: 3")
        #expect(diagnostics(text).count == 2)
    }

    @Test func dnsWithoutTLSIsRefusedOnEtcd34() throws {
        let text = """
        hosts:
          a: { address: 10.0.0.1 }
        dns: { server: a, domain: example.test }
        clusters:
          main:
            members: [a]
            tls: false
            bootstrap: { dns: {} }

        """
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        #expect(throws: InventoryError.self) { try inventory.check(memberVersion: "3.4.23") }
        do {
            try inventory.check(memberVersion: "3.4.23")
        } catch let error as InventoryError {
            #expect(error.diagnostics.first?.message.contains("etcd issue 11321") == true)
            #expect(error.diagnostics.first?.mark == .init(line: 8, column: 16))
        }
        try inventory.check(memberVersion: "3.5.16")
    }

    @Test func errorsPrintFileLineColumnAndCaret() {
        do {
            _ = try InventoryLoader.parse(valid.replacingOccurrences(of: "    tls: false", with: "    tls: maybe"), file: "inv.yml")
        } catch let error as InventoryError {
            #expect(error.description.hasPrefix("inv.yml:10:10: error: 'tls' in cluster 'main' must be true or false"))
            #expect(error.description.hasSuffix("    tls: maybe\n         ^"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

/// `supervisor:` under `member:` is every host's default; a host's own wins.
@Test func aHostsSupervisorWinsOverTheMembersDefault() throws {
    let text = valid.replacingOccurrences(of: "hosts:\n  etcd1: { address: 10.0.0.1 }\n  etcd2: { address: 10.0.0.2 }",
                                          with: "member:\n  supervisor: process\nhosts:\n  etcd1: { address: 10.0.0.1 }\n  etcd2: { address: 10.0.0.2, supervisor: systemd }")
    let inventory = try InventoryLoader.parse(text, file: "inv.yml")
    #expect(inventory.supervisorChoice(on: "etcd1") == .process)
    #expect(inventory.supervisorChoice(on: "etcd2") == .systemd)
    #expect(try InventoryLoader.parse(valid, file: "inv.yml").supervisorChoice(on: "etcd1") == .auto)
}
