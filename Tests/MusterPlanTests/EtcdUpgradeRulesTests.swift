import Testing
import MusterInventory
@testable import MusterPlan

/// The whole upgrade table, rule by rule: what each refuses (naming the rule, the member and the
/// way on) and what it lets roll.
@Suite struct EtcdUpgradeRulesTests {
    private func facts(_ running: [String], to target: String) -> UpgradeFacts {
        UpgradeFacts(cluster: "main", target: EtcdVersion(target)!,
                     running: running.enumerated().map { ("etcd\($0.offset + 1)", EtcdVersion($0.element)!) })
    }

    private func rules(_ facts: UpgradeFacts) -> [String] { EtcdUpgradeRules.refusals(facts).map(\.rule) }

    @Test func patchUpgradesAndDowngradesWithinALineRoll() {
        #expect(EtcdUpgradeRules.refusals(facts(["3.5.16", "3.5.16", "3.5.16"], to: "3.5.30")).isEmpty)
        #expect(EtcdUpgradeRules.refusals(facts(["3.4.23"], to: "3.4.45")).isEmpty)
        #expect(EtcdUpgradeRules.refusals(facts(["3.5.30"], to: "3.5.16")).isEmpty)
        #expect(EtcdUpgradeRules.refusals(facts(["3.6.14"], to: "3.6.14")).isEmpty, "no change, no rule")
    }

    @Test func oneMinorAtATimeNamesTheIntermediate() throws {
        let refusal = try #require(EtcdUpgradeRules.refusals(facts(["3.4.23", "3.4.23"], to: "3.6.14")).first)
        #expect(refusal.rule == "one-minor-at-a-time")
        #expect(refusal.member == "etcd1")
        #expect(refusal.reason.contains("3.4 -> 3.6 skips a minor"))
        #expect(refusal.wayOn.contains("upgrade to 3.5 first"))
        #expect(refusal.source.contains("upgrading-etcd"))
        #expect(rules(facts(["3.4.23"], to: "3.7.1")) == ["one-minor-at-a-time"])
        #expect(rules(facts(["3.5.33"], to: "3.7.1")) == ["one-minor-at-a-time"])
    }

    @Test func aDowngradeAcrossLinesIsRefused() {
        #expect(rules(facts(["3.5.16"], to: "3.4.23")) == ["no-downgrade"])
        #expect(rules(facts(["3.7.1"], to: "3.6.14")) == ["no-downgrade"])
    }

    @Test func to36NeedsEveryMemberOn3532First() throws {
        let refusals = EtcdUpgradeRules.versionRefusals(facts(["3.5.32", "3.5.16", "3.5.19"], to: "3.6.14"))
        #expect(refusals.map(\.member) == ["etcd2", "etcd3"])
        let first = try #require(refusals.first)
        #expect(first.rule == "3.5.32-before-3.6")
        #expect(first.wayOn == "upgrade to 3.5.32+ first: set member.binary to it and run up")
        #expect(first.description.contains("etcd2: runs etcd 3.5.16"))
        #expect(first.source.contains("19557") && first.source.contains("20967"))
    }

    @Test func to36NeedsACleanV2StoreOnEveryMember() {
        var upgrade = facts(["3.5.32", "3.5.33"], to: "3.6.14")
        #expect(EtcdUpgradeRules.versionRefusals(upgrade).isEmpty, "the version rules pass")
        #expect(rules(upgrade) == ["v2store-clean-before-3.6", "v2store-clean-before-3.6"], "not checked: refused")
        upgrade.v2Store = ["etcd1": .passed, "etcd2": .failed("Error: detected custom content in v2store")]
        let refusals = EtcdUpgradeRules.refusals(upgrade)
        #expect(refusals.count == 1)
        #expect(refusals.first?.member == "etcd2")
        #expect(refusals.first?.reason.contains("Error: detected custom content in v2store") == true)
        upgrade.v2Store["etcd2"] = .passed
        #expect(EtcdUpgradeRules.refusals(upgrade).isEmpty)
        #expect(EtcdUpgradeRules.needsV2StoreCheck(from: EtcdVersion(3, 5, 32), to: EtcdVersion(3, 6, 0)))
        #expect(!EtcdUpgradeRules.needsV2StoreCheck(from: EtcdVersion(3, 5, 16), to: EtcdVersion(3, 5, 30)))
    }

    @Test func to37NeedsEveryMemberOn3611First() {
        var upgrade = facts(["3.6.10", "3.6.14"], to: "3.7.1")
        upgrade.reached36AtIndex = 0
        let refusals = EtcdUpgradeRules.refusals(upgrade)
        #expect(refusals.map(\.rule) == ["3.6.11-before-3.7"])
        #expect(refusals.first?.member == "etcd1")
        #expect(refusals.first?.wayOn == "upgrade to 3.6.11+ first: set member.binary to it and run up")
    }

    @Test func to37NeedsASnapshotUnder36OnEveryMember() {
        var upgrade = facts(["3.6.14", "3.6.14", "3.6.14"], to: "3.7.1")
        // Unknown: refused, naming how muster comes to know it.
        #expect(rules(upgrade) == Array(repeating: "snapshot-under-3.6-before-3.7", count: 3))
        #expect(EtcdUpgradeRules.refusals(upgrade).first?.wayOn.contains("run up once more with the 3.6 binary") == true)
        // Founded on 3.6: no 3.5 entry in any WAL.
        upgrade.reached36AtIndex = 0
        #expect(EtcdUpgradeRules.refusals(upgrade).isEmpty)
        // Rolled to 3.6 at index 5000: a member whose newest snapshot is older, or which has none, is refused.
        upgrade.reached36AtIndex = 5000
        upgrade.newestSnapshotIndex = ["etcd1": 6001, "etcd2": 4999]
        let refusals = EtcdUpgradeRules.refusals(upgrade)
        #expect(refusals.map(\.member) == ["etcd2", "etcd3"])
        #expect(refusals.first?.reason.contains("index 4999") == true)
        #expect(refusals.last?.reason.contains("(none)") == true)
        upgrade.newestSnapshotIndex = ["etcd1": 6001, "etcd2": 5000, "etcd3": 10_000]
        #expect(EtcdUpgradeRules.refusals(upgrade).isEmpty)
    }

    @Test func everyRuleNamesItsSource() {
        #expect(EtcdUpgradeRules.table.map(\.name) == ["no-downgrade", "one-minor-at-a-time", "3.5.32-before-3.6",
                                                       "v2store-clean-before-3.6", "3.6.11-before-3.7", "snapshot-under-3.6-before-3.7"])
        #expect(EtcdUpgradeRules.table.allSatisfy { !$0.source.isEmpty })
    }

    @Test func theIndexAtWhichTheClusterReached36() {
        let all36 = ["3.6.14", "3.6.14", "3.6.14"]
        #expect(EtcdUpgradeRules.reached36AtIndex(serverVersions: all36, clusterVersion: "3.6.0", raftIndices: [900, 910, 905], foundedNow: false) == 910)
        #expect(EtcdUpgradeRules.reached36AtIndex(serverVersions: all36, clusterVersion: "3.6.0", raftIndices: [12, 12, 12], foundedNow: true) == 0)
        #expect(EtcdUpgradeRules.reached36AtIndex(serverVersions: all36, clusterVersion: "3.5.0", raftIndices: [900], foundedNow: false) == nil,
                "the cluster version has not moved yet")
        #expect(EtcdUpgradeRules.reached36AtIndex(serverVersions: ["3.6.14", "3.5.33"], clusterVersion: "3.5.0", raftIndices: [900], foundedNow: false) == nil)
        #expect(EtcdUpgradeRules.reached36AtIndex(serverVersions: [], clusterVersion: "3.6.0", raftIndices: [], foundedNow: false) == nil)
    }
}
