import Foundation
import MusterTestSupport
import Testing
import MusterPlan
@testable import MusterWorkspace

/// How a formed cluster's membership changes are planned from the inventory and the cluster
/// record, without any host: who joins with which `initial-cluster`, who leaves first, whose
/// peer URLs are updated in place.
@Suite struct MembershipPlanTests {
    private static let addresses = ["etcd1": "172.19.19.122", "etcd2": "172.19.19.123", "etcd3": "172.19.19.124",
                                    "etcd4": "172.19.19.125"]

    /// An inventory of four hosts whose cluster `main` formed on etcd1...etcd3 (as recorded).
    private func builder(members: String, addresses: [String: String] = addresses, bootstrap: String = "static",
                         edit: (inout ClusterRecord) -> Void = { _ in }) throws -> (PlanBuilder, String) {
        let root = FileManager.default.temporaryDirectory.path + "/muster-members-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let text = InventoryText.main(members: members, addresses: addresses, bootstrap: bootstrap)
        try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/inventory.yml"))
        let state = try LocalState(directory: root + "/state")
        let founders = ["etcd1", "etcd2", "etcd3"].enumerated().map { index, name in
            ClusterRecord.Member(name: name, id: String(format: "%016x", 0x1000 + index), peerURLs: ["http://\(Self.addresses[name]!):2380"])
        }
        var record = ClusterRecord(cluster: "main", clusterID: "abcd", formedAt: Date(), founders: founders)
        edit(&record)
        try state.records.update(record.cluster) { $0 = record }
        return (PlanBuilder(inventoryPath: root + "/inventory.yml", stateDirectory: root + "/state",
                            templatesDirectory: repositoryRoot.appendingPathComponent("templates").path), root)
    }

    private func config(_ host: String, in plan: Plan) -> String {
        plan.files.first { $0.host == host && $0.path.hasSuffix("/conf.yml") }?.contents ?? ""
    }

    @Test func aMoveJoinsWithTheSourceInItsInitialClusterUnlessTheSourceIsGone() throws {
        let (builder, root) = try builder(members: "etcd1, etcd2, etcd4")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let workspace = try builder.build()
        let cluster = try #require(workspace.plan.clusters.first)
        #expect(cluster.removals.map(\.name) == ["etcd3"] && cluster.removals.allSatisfy { !$0.beforeJoins })
        let newcomer = try #require(cluster.members.first { $0.name == "etcd4" })
        #expect(newcomer.join?.isNew == true)
        #expect(newcomer.initialCluster?.contains("etcd3=http://172.19.19.124:2380") == true, "add first, then remove: \(newcomer.initialCluster ?? "")")

        // The source gone (its host unreachable, or its member stopped): removed first.
        let gone = try workspace.replanned(departed: ["main": ["etcd3"]])
        let replanned = try #require(gone.plan.clusters.first)
        #expect(replanned.removals.map(\.beforeJoins) == [true])
        let joining = try #require(replanned.members.first { $0.name == "etcd4" })
        #expect(joining.initialCluster == "etcd1=http://172.19.19.122:2380,etcd2=http://172.19.19.123:2380,etcd4=http://172.19.19.125:2380")
        #expect(config("etcd4", in: gone.plan).contains("initial-cluster: \(joining.initialCluster!)"), "\(config("etcd4", in: gone.plan))")
        #expect(config("etcd1", in: gone.plan) == config("etcd1", in: workspace.plan), "a founder's file stays as it formed")
        // Only removals leave first: a member the inventory keeps is never planned as gone.
        let kept = try workspace.replanned(departed: ["main": ["etcd1"]])
        #expect(kept.plan.clusters.first?.members.first { $0.name == "etcd4" }?.initialCluster == newcomer.initialCluster)
    }

    /// Before: a replaced founder removed later was planned by its founding ID, already gone from
    /// the cluster, so `member remove` missed the member that replaced it, which stayed.
    @Test func aReplacedMemberIsRemovedByTheIDItJoinedWith() throws {
        let (builder, root) = try builder(members: "etcd1, etcd2") { record in
            let replaced = record.founders[2]
            record.removed = [replaced]
            record.added = [ClusterRecord.Member(name: "etcd3", id: "0000000000003000", peerURLs: replaced.peerURLs,
                                                initialCluster: "etcd1=http://172.19.19.122:2380,etcd2=http://172.19.19.123:2380,etcd3=http://172.19.19.124:2380")]
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(try builder.build().plan.clusters.first)
        #expect(cluster.removals.map(\.name) == ["etcd3"])
        #expect(cluster.removals.map(\.id) == [0x3000], "\(cluster.removals.map { String($0.id, radix: 16) })")
    }

    /// A restore founds the cluster again in any mode: the plan of a restore under way (IDs from
    /// its token, every member a founder) renders what the record it writes then renders, so the
    /// next `up` finds every conf.yml as it is. A discovery cluster's founders carry the restore's
    /// initial-cluster and token, never a discovery URL beside them (etcd refuses both).
    @Test func aRestoredClusterIsPlannedAsTheRestoreFoundedItInEveryMode() throws {
        let (builder, root) = try builder(members: "etcd1, etcd2, etcd4",
                                          bootstrap: "{ discovery: { url: 'http://172.19.19.122:2379', size: 3 } }") { record in
            record.added = [ClusterRecord.Member(name: "etcd4", id: "0000000000002000", peerURLs: ["http://172.19.19.125:2380"],
                                                initialCluster: "etcd1=http://172.19.19.122:2380,etcd2=http://172.19.19.123:2380,etcd3=http://172.19.19.124:2380,etcd4=http://172.19.19.125:2380")]
            record.removed = [record.founders[2]]
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let workspace = try builder.build()
        let token = "main-restored-20260101T000000Z-0123abcd"
        let restoring = try workspace.replanned(restoring: "main", token: token)
        let restored = try #require(restoring.plan.clusters.first)
        let everyone = "etcd1=http://172.19.19.122:2380,etcd2=http://172.19.19.123:2380,etcd4=http://172.19.19.125:2380"
        #expect(restored.members.allSatisfy { $0.join == nil && $0.initialCluster == everyone }, "\(restored.members.map(\.initialCluster))")
        let ids = restored.members.compactMap(\.memberID)
        #expect(ids.count == 3 && Set(ids).count == 3 && !ids.contains(0x1000) && !ids.contains(0x1001) && !ids.contains(0x2000), "new IDs: \(ids)")
        #expect(restored.clusterID != nil && restored.clusterID != 0xabcd)
        #expect(restored.removals.isEmpty)
        for host in ["etcd1", "etcd2", "etcd4"] {
            let conf = config(host, in: restoring.plan)
            #expect(conf.contains("initial-cluster: \(everyone)\n") && conf.contains("initial-cluster-token: \(token)\n")
                    && conf.contains("initial-cluster-state: new\n") && !conf.contains("discovery"), "\(conf)")
        }

        // The record as the restore writes it: the next plan renders the same files.
        let state = workspace.state
        var record = try #require(try state.clusterRecord("main"))
        record.founders = restored.members.map { ClusterRecord.Member(name: $0.name, id: String($0.memberID!, radix: 16), peerURLs: [$0.peerURL]) }
        record.clusterID = String(restored.clusterID!, radix: 16)
        record.added = []
        record.restoreToken = token
        try state.records.update(record.cluster) { $0 = record }
        let after = try builder.build()
        #expect(after.plan.files == restoring.plan.files)
        #expect(after.plan.clusters.first?.members.map(\.memberID) == restored.members.map(\.memberID))
    }

    @Test func aChangedAddressIsPlannedAsAPeerURLUpdateUntilTheRecordHasIt() throws {
        var moved = Self.addresses
        moved["etcd2"] = "172.19.19.200"
        let (builder, root) = try builder(members: "etcd1, etcd2, etcd3", addresses: moved)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let workspace = try builder.build()
        let cluster = try #require(workspace.plan.clusters.first)
        let member = try #require(cluster.members.first { $0.name == "etcd2" })
        #expect(member.formerPeerURL == "http://172.19.19.123:2380" && member.peerURL == "http://172.19.19.200:2380")
        #expect(member.memberID == 0x1001, "the same member: its ID stays")
        #expect(cluster.members.filter { $0.name != "etcd2" }.allSatisfy { $0.formerPeerURL == nil })
        let conf = config("etcd2", in: workspace.plan)
        #expect(conf.contains("listen-peer-urls: http://172.19.19.200:2380"), "\(conf)")
        #expect(conf.contains("etcd2=http://172.19.19.123:2380"), "the founding initial-cluster stays: \(conf)")

        // Once updated and recorded, nothing more to do; the founding is unchanged.
        let (done, doneRoot) = try self.builder(members: "etcd1, etcd2, etcd3", addresses: moved) { record in
            record.updatePeerURLs(name: "etcd2", id: "0000000000001001", peerURLs: ["http://172.19.19.200:2380"])
        }
        defer { try? FileManager.default.removeItem(atPath: doneRoot) }
        let updated = try done.build()
        #expect(updated.plan.clusters.first?.members.allSatisfy { $0.formerPeerURL == nil } == true)
        let record = try #require(try updated.state.clusterRecord("main"))
        #expect(record.members.first { $0.name == "etcd2" }?.peerURLs == ["http://172.19.19.200:2380"])
        #expect(record.founders.first { $0.name == "etcd2" }?.peerURLs == ["http://172.19.19.123:2380"])
        #expect(config("etcd1", in: updated.plan) == config("etcd1", in: workspace.plan))
    }

    /// A record written before muster could re-address (no `peerURLUpdates` key) still reads.
    @Test func aRecordWithoutPeerURLUpdatesStillReads() throws {
        let json = #"{"cluster":"main","clusterID":"abcd","formedAt":"2026-01-01T00:00:00Z","founders":[{"name":"etcd1","id":"0000000000001000","peerURLs":["http://172.19.19.122:2380"]}],"added":[],"removed":[],"snapshots":[]}"#
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let record = try decoder.decode(ClusterRecord.self, from: Data(json.utf8))
        #expect(record.peerURLUpdates == nil && record.members.map(\.name) == ["etcd1"])
    }
}
