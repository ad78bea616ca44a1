import Foundation
import MusterTestSupport
import Testing
import MusterPlan
import MusterWorkspace
@testable import MusterDeploy

/// `up`'s, `replace`'s and `restore`'s steps as values, planned without any host from a recorded cluster and
/// the members' conditions: the order that keeps a quorum, and what each step carries.
@Suite struct StepPlanTests {
    private static let addresses = ["etcd1": "10.9.0.1", "etcd2": "10.9.0.2", "etcd3": "10.9.0.3", "etcd4": "10.9.0.4"]

    /// A workspace whose cluster `main` formed on etcd1...etcd3 (as recorded); the inventory
    /// lists `members` now.
    private func workspace(members: String, addresses: [String: String] = addresses) throws -> (Workspace, String) {
        let root = FileManager.default.temporaryDirectory.path + "/muster-steps-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Data(InventoryText.main(members: members, addresses: addresses).utf8).write(to: URL(fileURLWithPath: root + "/inventory.yml"))
        let state = try LocalState(directory: root + "/state")
        let founders = ["etcd1", "etcd2", "etcd3"].enumerated().map { index, name in
            ClusterRecord.Member(name: name, id: String(format: "%016x", 0x1000 + index), peerURLs: ["http://\(Self.addresses[name]!):2380"])
        }
        try state.records.update("main") { $0 = ClusterRecord(cluster: "main", clusterID: "abcd", formedAt: Date(), founders: founders) }
        let builder = PlanBuilder(inventoryPath: root + "/inventory.yml", stateDirectory: root + "/state",
                                  templatesDirectory: repositoryRoot + "/templates")
        return (try builder.build(), root)
    }

    private func running(_ names: [String], _ restart: MemberCondition.RestartCause? = nil,
                         restarting: Set<String> = []) -> [String: MemberCondition] {
        Dictionary(uniqueKeysWithValues: names.map {
            ($0, MemberCondition(running: true, restart: restarting.contains($0) ? restart : nil))
        })
    }

    /// Each step as `NAME MEMBER...`.
    private func outline(_ steps: [Step]) -> [String] {
        steps.map { step in
            let members: [String]
            switch step.action {
            case .backup(let voters): members = voters.map(\.name)
            case .readdress(let member), .start(let member), .join(let member), .restart(let member, _),
                 .moveDataAside(let member, _), .writeFiles(let member), .stop(let member), .restoreData(let member, _),
                 .defragment(let member), .save(let member, _, _): members = [member.name]
            case .writeConfigs(let list): members = list.map(\.name)
            case .ship(_, _, let hosts): members = hosts
            case .remove(let removal): members = [removal.name]
            case .upgrade(let list, _): members = list.map(\.name)
            case .waitHealthy: members = []
            }
            return ([step.name] + members).joined(separator: " ")
        }
    }

    @Test func aGrowBacksUpThenJoinsThroughALearnerAndWaits() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3, etcd4")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        let conditions = running(["etcd1", "etcd2", "etcd3"])
        #expect(outline(UpSteps.plan(cluster, conditions: conditions, backup: true))
                == ["backup etcd1 etcd2 etcd3", "join etcd4", "health-wait"])
        #expect(outline(UpSteps.plan(cluster, conditions: conditions, backup: false)) == ["join etcd4", "health-wait"])
        // Every start and join ends at the boundary earlier runs were cut at.
        #expect(UpSteps.plan(cluster, conditions: conditions, backup: true)[1].after == ["up.between-member-starts"])
    }

    @Test func aMoveAddsFirstWhileTheSourceRunsAndRemovesFirstOnceItIsGone() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd4")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        // The source's member runs: it gives the backup too, and leaves once the newcomer votes.
        #expect(outline(UpSteps.plan(cluster, conditions: running(["etcd1", "etcd2"]), backup: true))
                == ["backup etcd1 etcd2 etcd3", "join etcd4", "health-wait", "remove etcd3"])
        let gone = try #require(try workspace.replanned(departed: ["main": ["etcd3"]]).plan.clusters.first)
        let steps = UpSteps.plan(gone, conditions: running(["etcd1", "etcd2"]), backup: true)
        #expect(outline(steps) == ["backup etcd1 etcd2", "remove etcd3", "join etcd4", "health-wait"])
        #expect(steps[1].line.contains("remove etcd3 (1002) first: it is gone"), "\(steps[1].line)")
    }

    @Test func aNewAddressIsUpdatedInPlaceAndNotRestartedTwice() throws {
        var moved = Self.addresses
        moved["etcd2"] = "10.9.0.200"
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3", addresses: moved)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        // etcd2's config changed with its address: it restarts through the readdress step alone.
        let steps = UpSteps.plan(cluster, conditions: running(["etcd1", "etcd2", "etcd3"], .newFiles, restarting: ["etcd2"]), backup: true)
        #expect(outline(steps) == ["backup etcd1 etcd2 etcd3", "readdress etcd2"])
        #expect(steps[1].line == "cluster main, step readdress: update etcd2 peer URLs http://10.9.0.2:2380 -> http://10.9.0.200:2380, then restart it on its new address")
    }

    @Test func restartsComeAfterStartsAndAnUpgradeIsOneStepTheLeaderLast() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        var conditions = running(["etcd1", "etcd3"], .newFiles, restarting: ["etcd1", "etcd3"])
        #expect(outline(UpSteps.plan(cluster, conditions: conditions, backup: true))
                == ["backup etcd1 etcd3", "start etcd2", "health-wait", "rolling-restart etcd1", "rolling-restart etcd3"])
        conditions["etcd3"]?.restart = .anotherSupervisor(.systemd)
        #expect(UpSteps.plan(cluster, conditions: conditions, backup: false).last?.line.contains("(moving to systemd)") == true)
        let upgrade = running(["etcd1", "etcd2", "etcd3"], .anotherBinary, restarting: ["etcd1", "etcd2", "etcd3"])
        #expect(outline(UpSteps.plan(cluster, conditions: upgrade, backup: false)) == ["upgrade etcd1 etcd2 etcd3"])
        // Nothing runs yet: every member started in order, no backup of nothing.
        #expect(outline(UpSteps.plan(cluster, conditions: [:], backup: true)) == ["start etcd1", "start etcd2", "start etcd3", "health-wait"])
        #expect(UpSteps.plan(cluster, conditions: running(["etcd1", "etcd2", "etcd3"]), backup: true).isEmpty, "nothing to do")
    }

    @Test func aReplaceRemovesMovesTheDataAsideAndJoinsAgain() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        let target = try #require(cluster.member(named: "etcd3"))
        let removal = RemovalPlan(name: "etcd3", id: 0x1002, peerURL: target.peerURL, member: target)
        let steps = ReplaceSteps.plan(target, removal: removal, in: cluster, backup: true, wipeData: false)
        #expect(outline(steps) == ["backup etcd1 etcd2", "remove etcd3", "move-data-aside etcd3", "write-files etcd3", "join etcd3", "health-wait"])
        #expect(steps[1].after == ["replace.after-remove"])
        #expect(steps[2].line.contains("move aside the data dir"), "\(steps[2].line)")
        let wiping = ReplaceSteps.plan(target, removal: removal, in: cluster, backup: false, wipeData: true)
        #expect(outline(wiping).first == "remove etcd3" && wiping[1].line.contains("delete the data dir"), "\(wiping.map(\.line))")
    }

    @Test func aRestoreShipsStopsRestoresEachMemberWritesItsConfigsAndStarts() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        let restored = try #require(try workspace.replanned(restoring: "main", token: "main-restored-1").plan.clusters.first)
        let steps = RestoreSteps.plan(cluster, restored: restored, snapshot: "/s/main-7.db", revision: 7, tool: "etcdutl-3.5.16")
        #expect(outline(steps) == ["ship etcd1 etcd2 etcd3", "stop etcd1", "stop etcd2", "stop etcd3",
                                   "restore-data etcd1", "restore-data etcd2", "restore-data etcd3", "write-configs etcd1 etcd2 etcd3",
                                   "start etcd1", "start etcd2", "start etcd3", "health-wait"])
        // The boundaries earlier runs were cut at, each once and where it was.
        #expect(steps.map(\.after) == [[], [], [], ["restore.after-stop"], ["restore.after-first-member"], [], [],
                                        ["restore.before-start"], [], [], [], []])
        // The members restored and started are the restore's founders (its IDs), not the record's.
        guard case .restoreData(let first, 7) = steps[4].action else { Issue.record("\(steps[4])"); return }
        #expect(first.memberID == restored.members[0].memberID && first.memberID != cluster.members[0].memberID)
        #expect(first.initialCluster == restored.members[0].initialCluster)
        #expect(steps[0].line == "cluster main, step ship: send etcdutl-3.5.16 and the snapshot /s/main-7.db to etcd1, etcd2, etcd3 where they lack them, while the cluster still runs")
    }

    @Test func aDefragIsOneStepPerMemberInTheOrderGivenEachEndingAtTheBoundaryBetweenMembers() throws {
        let (workspace, root) = try workspace(members: "etcd1, etcd2, etcd3")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cluster = try #require(workspace.plan.clusters.first)
        let order = [cluster.members[1], cluster.members[2], cluster.members[0]]
        let steps = DefragSteps.plan(cluster, order: order)
        #expect(outline(steps) == ["defragment etcd2", "defragment etcd3", "defragment etcd1"])
        #expect(steps.allSatisfy { $0.after == ["defrag.between-members"] })
    }
}
