import Foundation
import Testing
@testable import MusterInventory

/// Which discovery protocol members speak, and the refusals that depend on their version: each
/// at its FILE:LINE:COLUMN (`Inventory.check(memberVersion:)`, run before any plan).
@Suite struct DiscoveryProtocolTests {
    @Test(arguments: [
        ("3.4.23", nil, "v2"), ("3.5.16", nil, "v2"), ("3.5.30", nil, "v2"), ("3.6.0", nil, "v3"), ("3.7.1", nil, "v3"),
        ("3.6.14", "v2", "v2"), ("3.6.14", "v3", "v3"), ("3.5.16", "v2", "v2"),
        ("3.7.1", "v2", "refused"), ("3.5.30", "v3", "refused"), ("3.4.23", "v3", "refused"),
    ] as [(String, String?, String)])
    func theProtocolFollowsTheMembersVersion(_ version: String, _ forced: String?, _ expected: String) {
        let chosen = DiscoveryProtocol.choose(memberVersion: version, forced: forced.flatMap(DiscoveryProtocol.init(rawValue:)))
        switch chosen {
        case .success(let value): #expect(value.rawValue == expected, "\(version) forced \(forced ?? "-")")
        case .failure: #expect(expected == "refused", "\(version) forced \(forced ?? "-")")
        }
    }

    /// Lines: 1 member, 2-4 hosts, 5 clusters, 6 main, 7 members, 8 tls, 9 bootstrap (the
    /// discovery mapping at 9:29), then the backend 'seed'.
    private static func inventory(version: String, discovery: String, mainTLS: Bool = true, seedTLS: Bool = false) -> String {
        """
        member: { version: \(version) }
        hosts:
          a: { address: 10.0.0.1 }
          b: { address: 10.0.0.2 }
        clusters:
          main:
            members: [a]
            tls: \(mainTLS)
            bootstrap: { discovery: \(discovery) }
          seed: { members: [b], tls: \(seedTLS) }

        """
    }

    private func diagnosticsAfterVersionCheck(_ text: String, version: String) throws -> [Diagnostic] {
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        do {
            try inventory.check(memberVersion: version)
            return []
        } catch let error as InventoryError {
            return error.diagnostics
        }
    }

    @Test(arguments: [
        // protocol: v2 on 3.7 members, v3 before 3.6: at the protocol key's value.
        ("3.7.1", "{ cluster: seed, size: 1, protocol: v2 }", false, 9, 65, "cluster 'main' cannot use v2 discovery: etcd 3.7.1 has no v2 discovery"),
        ("3.5.16", "{ cluster: seed, size: 1, protocol: v3 }", false, 9, 65, "cluster 'main' cannot use v3 discovery: etcd 3.5.16 has no v3 discovery (etcd added it in 3.6)"),
        // v2 through an inventory backend on 3.6: no v2 keys API there, both clusters named.
        ("3.6.14", "{ cluster: seed, size: 1, protocol: v2 }", false, 9, 65, "cluster 'main' uses v2 discovery through cluster 'seed', but 'seed' runs etcd 3.6.14, which serves no v2 keys API"),
        // v2's client presents no certificate: a TLS backend is refused for v2 members only.
        ("3.4.23", "{ cluster: seed, size: 1 }", true, 9, 29, "discovery cluster 'seed' has TLS on"),
        // v3 needs an etcd backend, not a v2 URL or a service.
        ("3.6.14", "{ url: 'http://10.0.0.9:2379', size: 1 }", false, 9, 29, "uses v3 discovery (its members run etcd 3.6.14), which speaks to an etcd's v3 API"),
        ("3.5.16", "{ endpoints: ['http://10.0.0.9:2379'], size: 1 }", false, 9, 29, "'endpoints' names a v3 discovery backend"),
        ("3.6.14", "{ endpoints: ['https://10.0.0.9:2379'], size: 1 }", false, 9, 29, "discovers through https endpoints: give 'tls: { ca, cert, key }'"),
    ] as [(String, String, Bool, Int, Int, String)])
    func aProtocolTheMembersCannotSpeakIsRefusedAtItsPlace(_ version: String, _ discovery: String, _ seedTLS: Bool,
                                                          _ line: Int, _ column: Int, _ fragment: String) throws {
        let found = try diagnosticsAfterVersionCheck(Self.inventory(version: version, discovery: discovery, seedTLS: seedTLS), version: version)
        expectDiagnostic(found, line: line, column: column, containing: fragment)
    }

    @Test func aBackendServingLoopbackOnlyIsRefused() {
        let text = Self.inventory(version: "3.6.14", discovery: "{ cluster: seed, size: 1 }")
            .replacingOccurrences(of: "seed: { members: [b], tls: false }", with: "seed: { members: [b], tls: false, client_listen: loopback }")
        expectDiagnostic(diagnostics(of: text), line: 9, column: 16, containing: "discovery cluster 'seed' serves clients on 127.0.0.1 only")
    }

    @Test func aTLSBackendNeedsTheDiscoveryClusterOnTLSToo() throws {
        let text = Self.inventory(version: "3.6.14", discovery: "{ cluster: seed, size: 1 }", mainTLS: false, seedTLS: true)
        expectDiagnostic(try diagnosticsAfterVersionCheck(text, version: "3.6.14"), line: 9, column: 29,
                         containing: "discovers through 'seed', which has TLS on: its members present a client certificate of 'seed''s CA")
    }

    @Test func aV3BackendKeepsItsTLS() throws {
        let text = Self.inventory(version: "3.6.14", discovery: "{ cluster: seed, size: 1 }", seedTLS: true)
        #expect(try diagnosticsAfterVersionCheck(text, version: "3.6.14").isEmpty)
        #expect(try diagnosticsAfterVersionCheck(text, version: "3.7.1").isEmpty)
    }

    @Test func anExternalBackendTakesEndpointsAndTLSFiles() throws {
        let text = Self.inventory(version: "3.6.14", discovery: "{ endpoints: ['https://10.0.0.9:2379', 'https://10.0.0.10:2379'], size: 1, tls: { ca: /etc/d/ca.crt, cert: /etc/d/c.crt, key: /etc/d/c.key } }")
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        try inventory.check(memberVersion: "3.6.14")
        let main = try #require(inventory.cluster(named: "main"))
        #expect(main.bootstrap == .discovery(source: .endpoints(["https://10.0.0.9:2379", "https://10.0.0.10:2379"]), size: 1, proxy: nil))
        #expect(main.discoveryOptions?.tls?.key == "/etc/d/c.key")
    }

    @Test(arguments: [
        ("{ cluster: seed, size: 1, protocol: v4 }", 9, 65, "discovery protocol 'v4' of cluster 'main' must be v2 or v3"),
        ("{ cluster: seed, size: 1, tls: { ca: /a, cert: /b, key: /c } }", 9, 60, "discovery tls of cluster 'main' is for an 'endpoints' backend"),
        ("{ endpoints: ['https://10.0.0.9:2379'], size: 1, tls: { ca: /a, cert: b, key: /c } }", 9, 99, "discovery tls cert 'b' must be an absolute path"),
        ("{ endpoints: ['ftp://10.0.0.9'], size: 1 }", 9, 43, "discovery endpoint 'ftp://10.0.0.9' must be an http:// or https:// URL"),
    ] as [(String, Int, Int, String)])
    func badDiscoveryKeysAreRefusedAtTheirPlace(_ discovery: String, _ line: Int, _ column: Int, _ fragment: String) {
        expectDiagnostic(diagnostics(of: Self.inventory(version: "3.6.14", discovery: discovery)), line: line, column: column, containing: fragment)
    }
}
