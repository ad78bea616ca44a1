import Foundation
import MusterPlan
import MusterTestSupport
import Testing
@testable import MusterWorkspace

/// The state directory's writes: every change a read-change-write on what is saved now, under
/// the state lock, and nothing written for an inventory that is refused.
@Suite struct StateWriteTests {
    /// Two clusters that discover through an etcd outside the inventory: the same wave.
    private func inventory(in directory: TemporaryDirectory, membersOfA: String = "h1") throws -> String {
        let path = directory.path + "/inventory.yml"
        let text = """
            member: { version: 3.4.23 }
            hosts:
              h1: { address: 127.0.0.1 }
              h2: { address: 127.0.0.2 }
            clusters:
              a:
                members: [\(membersOfA)]
                tls: false
                bootstrap: { discovery: { url: http://127.0.0.1:2379, size: 1 } }
              b:
                members: [h2]
                tls: false
                client_port: 3379
                peer_port: 3380
                bootstrap: { discovery: { url: http://127.0.0.1:2379, size: 1 } }

            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func builder(_ inventory: String, state: String? = nil) -> PlanBuilder {
        PlanBuilder(inventoryPath: inventory, stateDirectory: state,
                    templatesDirectory: repositoryRoot.appendingPathComponent("templates").path)
    }

    /// `BootstrapMode.beforeStart` saves each cluster's token once its hosts carry it; the
    /// clusters of one wave do so side by side. Each save must keep the other's token.
    @Test func twoDiscoveryClustersOfOneWaveKeepBothTokens() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-state-writes")
        let workspace = try builder(try inventory(in: directory), state: directory.path + "/state").build(lock: true)
        defer { workspace.state.unlock() }
        // Many rounds: the lost update needs both saves between one's read and the other's write.
        for round in 0..<200 {
            let tokens = ["a": DiscoveryToken(token: "a-\(round)"), "b": DiscoveryToken(token: "b-\(round)")]
            let replanned = try workspace.replanned(tokens: tokens)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for cluster in ["a", "b"] { group.addTask { try replanned.saveToken(of: cluster) } }
                try await group.waitForAll()
            }
            let saved = try workspace.state.discoveryTokens()
            #expect(saved == tokens, "round \(round): \(saved)")
            if saved != tokens { break }
        }
    }

    /// Every writer of a cluster record (up, replace, restore, snapshot) changes it through
    /// `records.update`: changes made side by side all stay.
    @Test func recordChangesMadeSideBySideAllStay() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-state-writes")
        let state = try LocalState(directory: directory.path + "/state")
        try state.lock()
        defer { state.unlock() }
        let founder = ClusterRecord.Member(name: "h1", id: "1", peerURLs: ["http://127.0.0.1:2380"])
        try state.records.update("main") { $0 = ClusterRecord(cluster: "main", clusterID: "c", formedAt: Date(), founders: [founder]) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for change in 0..<20 {
                        try state.records.update("main") { record in
                            record?.added.append(ClusterRecord.Member(name: "w\(writer)-\(change)", id: "\(writer * 100 + change)", peerURLs: []))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let record = try #require(try state.clusterRecord("main"))
        #expect(record.added.count == 160 && record.founders == [founder])
        try state.records.update("main") { $0 = nil }
        #expect(try state.clusterRecord("main") == nil)
    }

    /// Discovery's size below the members is refused when planning: `render` must leave no
    /// state dir behind (it used to save the new tokens first).
    @Test func aRefusedInventoryLeavesNoStateDirectory() throws {
        let directory = try TemporaryDirectory(prefix: "muster-state-writes")
        let path = try inventory(in: directory, membersOfA: "h1, h2")
        #expect { _ = try builder(path).build(renderingFiles: false) } throws: { "\($0)".contains("discovery size 1 of cluster 'a' is smaller than its 2 members") }
        let state = LocalState.defaultDirectory(forInventory: path)
        #expect(!FileManager.default.fileExists(atPath: state), "\(state) was created")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/.muster"))
    }

    /// `render` saves a token it made (the next render must use the same one), but only under the
    /// state lock: while another run holds it, render refuses rather than write beside that run.
    @Test func renderSavesANewTokenOnlyUnderTheLock() throws {
        let directory = try TemporaryDirectory(prefix: "muster-state-writes")
        let path = try inventory(in: directory)
        let other = try LocalState(directory: LocalState.defaultDirectory(forInventory: path))
        try other.lock()
        do {
            _ = try builder(path).build(renderingFiles: false)
            Issue.record("render wrote tokens while another run held the lock")
        } catch let error as StateError {
            #expect(error.kind == .refused && error.message.contains("holds the lock"), "\(error)")
        }
        #expect(try other.discoveryTokens().isEmpty)
        other.unlock()
        let first = try builder(path).build(renderingFiles: false)
        #expect(Set(first.tokens.keys) == ["a", "b"])
        #expect(try first.state.discoveryTokens() == first.tokens)
        #expect(try builder(path).build(renderingFiles: false).tokens == first.tokens, "a second render uses the saved tokens")
    }
}
