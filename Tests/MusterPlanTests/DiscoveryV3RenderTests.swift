import Foundation
import Testing
import MusterBasics
import MusterInventory
@testable import MusterPlan
import MusterWorkspace

/// v3 discovery as rendered for members on 3.6 and 3.7 (no such binary exists here: the files
/// are what those members would read). The backend keeps TLS on, and every member gets
/// etcd's `discovery-config` with the backend's endpoints and the client certificate's paths.
@Suite struct DiscoveryV3RenderTests {
    static let token = "4b1e4b9c-7c1f-4a49-9d6f-1b9c1d2e3f40"

    private func render(_ inventory: Inventory, version: String) throws -> ([ClusterPlan], [RenderedFile]) {
        let facts = PlanFacts(memberVersion: version, discoveryTokens: ["main": DiscoveryToken(token: Self.token)])
        let clusters = try Planner(inventory: inventory, facts: facts).plan()
        let templates = try TemplateLoader.load(directory: repositoryRoot.appendingPathComponent("templates").path)
        return (clusters, try Renderer(templates: templates, inventory: inventory).files(for: clusters))
    }

    private func seed() throws -> Inventory {
        try InventoryLoader.load(path: repositoryRoot.appendingPathComponent("inventories/seed-discovery-v3.yml").path)
    }

    /// Set MUSTER_UPDATE_GOLDEN=1 to rewrite the golden trees after a deliberate template change.
    @Test(arguments: ["3.6.14", "3.7.1"])
    func theSeedRendersLikeGolden(_ version: String) throws {
        let (_, files) = try render(try seed(), version: version)
        let directory = goldenRoot.appendingPathComponent("seed-discovery-v3-\(version)")
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" {
            try? FileManager.default.removeItem(at: directory)
            for file in files {
                let url = directory.appendingPathComponent(file.host + file.path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(file.contents.utf8).write(to: url)
            }
        }
        for file in files {
            let golden = try String(contentsOf: directory.appendingPathComponent(file.host + file.path), encoding: .utf8)
            #expect(file.contents == golden, "\(file.host)\(file.path) differs from golden")
        }
        #expect(files.count == 12)
    }

    @Test(arguments: ["3.6.14", "3.7.1"])
    func membersGetEtcdsDiscoveryConfigAndTheBackendKeepsClientCertificates(_ version: String) throws {
        let (clusters, files) = try render(try seed(), version: version)
        let main = try #require(clusters.first { $0.name == "main" })
        let discovery = try #require(main.discoveryV3)
        #expect(main.mode == "discovery-v3" && main.discovery == nil && main.dependsOn == ["disco"])
        #expect(discovery.endpoints == ["https://172.19.19.122:2379"] && discovery.clientCertificate)
        #expect(discovery.sizeKey == "/_etcd/registry/\(Self.token)/_config/size")
        // etcd founds a v3 discovery cluster under the bare token (embed.Config.PeerURLsMapAndToken).
        for member in main.members {
            #expect(member.memberID == EtcdIDs.memberID(peerURLs: [member.peerURL], token: Self.token))
        }
        let conf = try #require(files.first { $0.host == "etcd2" && $0.path == "/etc/etcd/main/conf.yml" }).contents
        #expect(conf.contains("discovery-config:\n  token: \(Self.token)\n  client:\n    endpoints:\n    - https://172.19.19.122:2379\n    secure:\n      insecure-transport: false\n      cert: /etc/etcd/main/pki/discovery-client.crt\n      key: /etc/etcd/main/pki/discovery-client.key\n      cacert: /etc/etcd/main/pki/discovery-ca.crt\n"))
        #expect(!conf.contains("\ndiscovery:") && !conf.contains("initial-cluster:") && !conf.contains("initial-cluster-token"))
        let backend = try #require(files.first { $0.host == "etcd1" && $0.path == "/etc/etcd/disco/conf.yml" }).contents
        #expect(!backend.contains("enable-v2") && !backend.contains("client-cert-auth: false"))
    }

    @Test func planJSONCarriesTheTokenAndTheSizeKey() throws {
        let (clusters, _) = try render(try seed(), version: "3.7.1")
        let data = PlanSummary.json(Plan(inventory: "seed-discovery-v3.yml", clusters: clusters, files: []))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let main = try #require((document["clusters"] as? [[String: Any]])?.first { $0["name"] as? String == "main" })
        #expect(main["mode"] as? String == "discovery-v3")
        let discovery = try #require(main["discovery_v3"] as? [String: Any])
        #expect(discovery["token"] as? String == Self.token && discovery["backend_cluster"] as? String == "disco")
        #expect(discovery["size_key"] as? String == "/_etcd/registry/\(Self.token)/_config/size" && discovery["size"] as? Int == 3)
        #expect(discovery["endpoints"] as? [String] == ["https://172.19.19.122:2379"])
    }

    /// The same inventory on 3.5 members speaks v2 and renders `discovery: URL` as before.
    @Test func membersBefore36RenderV2Discovery() throws {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("inventories/seed-discovery-v3.yml"), encoding: .utf8)
            .replacingOccurrences(of: "    members: [etcd1]\n", with: "    members: [etcd1]\n    tls: false\n")
        let (clusters, files) = try render(try InventoryLoader.parse(text, file: "v2.yml"), version: "3.5.16")
        #expect(clusters.first { $0.name == "main" }?.mode == "discovery")
        let conf = try #require(files.first { $0.host == "etcd2" && $0.path == "/etc/etcd/main/conf.yml" }).contents
        #expect(conf.contains("discovery: http://172.19.19.122:2379/v2/keys/discovery/\(Self.token)") && !conf.contains("discovery-config"))
        #expect(files.first { $0.host == "etcd1" }?.contents.contains("enable-v2: true") == true)
    }

    @Test func anExternalBackendRendersItsEndpointsAndTheShippedFiles() throws {
        let text = """
            member: { version: 3.7.1 }
            hosts:
              a: { address: 10.0.0.1 }
            clusters:
              main:
                members: [a]
                bootstrap:
                  discovery:
                    endpoints: ['https://10.0.0.9:2379/', 'https://10.0.0.10:2379']
                    size: 1
                    tls: { ca: /etc/disco/ca.crt, cert: /etc/disco/client.crt, key: /etc/disco/client.key }

            """
        let (clusters, files) = try render(try InventoryLoader.parse(text, file: "ext.yml"), version: "3.7.1")
        #expect(clusters[0].discoveryV3?.backendCluster == nil && clusters[0].dependsOn.isEmpty)
        let conf = try #require(files.first { $0.path == "/etc/etcd/main/conf.yml" }).contents
        #expect(conf.contains("    endpoints:\n    - https://10.0.0.9:2379\n    - https://10.0.0.10:2379\n    secure:\n      insecure-transport: false\n      cert: /etc/etcd/main/pki/discovery-client.crt\n"))
    }

    @Test func plainEndpointsRenderNoSecureBlock() throws {
        let text = """
            member: { version: 3.6.14 }
            hosts:
              a: { address: 10.0.0.1 }
            clusters:
              main: { members: [a], tls: false, bootstrap: { discovery: { endpoints: ['http://10.0.0.9:2379'], size: 1 } } }

            """
        let (_, files) = try render(try InventoryLoader.parse(text, file: "plain.yml"), version: "3.6.14")
        let conf = try #require(files.first { $0.path == "/etc/etcd/main/conf.yml" }).contents
        #expect(conf.contains("    endpoints:\n    - http://10.0.0.9:2379\ninitial-cluster-state: new\n"))
    }
}
