import Foundation
import Testing
import MusterInventory
import MusterPlan
@testable import MusterDeploy

/// Clusters come up side by side unless one discovers through another.
@Suite struct WavesTests {
    @Test func clustersWaitOnlyForTheirDiscoveryBackend() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-waves-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("inventory.yml").path
        try Data("""
            hosts:
              h1: { address: 10.0.0.1 }
              h2: { address: 10.0.0.2 }
              h3: { address: 10.0.0.3 }
              h4: { address: 10.0.0.4 }
            clusters:
              registry: { members: [h1], bootstrap: static, tls: false, client_port: 3379, peer_port: 3380 }
              apps: { members: [h2, h3, h4], bootstrap: { discovery: { cluster: registry, size: 3 } } }
              jobs: { members: [h2, h3, h4], bootstrap: static, client_port: 4379, peer_port: 4380 }
              solo: { members: [h1], bootstrap: static, client_port: 5379, peer_port: 5380 }

            """.utf8).write(to: URL(fileURLWithPath: path))
        let inventory = try InventoryLoader.load(path: path)
        let clusters = try Planner(inventory: inventory, facts: PlanFacts(memberVersion: "3.4.23", discoveryTokens: ["apps": DiscoveryToken(token: "waves-test")])).plan()
        let waves = BringUp.waves(clusters).map { $0.sorted() }
        #expect(waves == [["jobs", "registry", "solo"], ["apps"]])
    }
}
