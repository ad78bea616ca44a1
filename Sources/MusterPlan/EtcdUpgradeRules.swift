import MusterInventory

/// What is known about a cluster whose member binary changes version, when the rules judge it.
public struct UpgradeFacts: Sendable {
    public enum V2StoreCheck: Sendable, Equatable {
        case passed
        /// `etcdutl check v2store` failed; etcd's own words.
        case failed(String)
    }

    public var cluster: String
    public var target: EtcdVersion
    /// Each running member's version, in member order.
    public var running: [(member: String, version: EtcdVersion)]
    /// By member: the outcome of the target's `etcdutl check v2store` on its data dir; absent
    /// when not run (yet).
    public var v2Store: [String: V2StoreCheck] = [:]
    /// The raft index at which muster saw every member run 3.6 (the cluster record's), 0 for a
    /// cluster founded on 3.6; nil when unknown.
    public var reached36AtIndex: UInt64?
    /// By member: the index of its newest `.snap` file (etcd names them TERM-INDEX.snap); absent
    /// when it has none.
    public var newestSnapshotIndex: [String: UInt64] = [:]

    public init(cluster: String, target: EtcdVersion, running: [(member: String, version: EtcdVersion)]) {
        self.cluster = cluster
        self.target = target
        self.running = running
    }
}

/// One refused upgrade: which rule, which member, why, what to do, and where the rule comes from.
public struct UpgradeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var rule: String
    public var member: String
    public var reason: String
    public var wayOn: String
    public var source: String

    public var description: String { "\(member): \(reason) (rule \(rule), from \(source)); \(wayOn)" }
}

/// The upgrade guards, each with its source, in the order they are asked. A version change that
/// no rule refuses rolls (a patch upgrade within a line always does). Pure: the facts a rule
/// needs from the hosts (`etcdutl check v2store`, snapshot indices) are gathered before, and
/// `needsV2StoreCheck`/`needsSnapshotIndices` say when.
public enum EtcdUpgradeRules {
    public struct Rule: Sendable {
        public var name: String
        public var source: String
        /// The refusal for one member going from `from` to the facts' target, or nil.
        public var judge: @Sendable (_ member: String, _ from: EtcdVersion, _ facts: UpgradeFacts) -> UpgradeRefusal?
    }

    static let upgradePolicy = "etcd's upgrade policy (etcd.io/docs/v3.6/upgrades/upgrading-etcd: one minor at a time, no downgrade by binary swap)"
    static let guide36 = "etcd's 3.5 to 3.6 upgrade guide (upgrade_3_6.md; floor raised 3.5.20 -> 3.5.26 -> 3.5.32 after etcd issues 19557, 20793, 20967)"
    static let v2StoreGuide = "etcd's 3.5 to 3.6 upgrade guide, V2 Store (upgrade_3_6.md: etcdutl check v2store; 3.6 refuses to start on custom v2 data)"
    static let guide37 = "etcd's 3.6 to 3.7 upgrade guide (upgrade_3_7.md: every member on 3.6.11 or later)"
    static let walUnder36 = "muster issue 33 (checked with 3.5.33 -> 3.6.14 -> 3.7.1: the first 3.7 member panics replaying WAL entries written under 3.5, 'unmarshal should never fail')"

    public static let table: [Rule] = [
        Rule(name: "no-downgrade", source: upgradePolicy) { member, from, facts in
            guard facts.target.line != from.line, (facts.target.major, facts.target.minor) < (from.major, from.minor) else { return nil }
            return UpgradeRefusal(rule: "no-downgrade", member: member,
                                  reason: "runs etcd \(from), newer than \(facts.target): etcd cannot run a data dir of a newer minor",
                                  wayOn: "go back through a snapshot taken on \(facts.target.line) or older (`muster restore --from FILE`)", source: upgradePolicy)
        },
        Rule(name: "one-minor-at-a-time", source: upgradePolicy) { member, from, facts in
            let to = facts.target
            guard to.major != from.major || to.minor > from.minor + 1 else { return nil }
            let next = to.major == from.major ? "\(from.major).\(from.minor + 1)" : "the next minor of \(from.line)"
            return UpgradeRefusal(rule: "one-minor-at-a-time", member: member,
                                  reason: "runs etcd \(from): \(from.line) -> \(to.line) skips \(to.minor - from.minor - 1 > 1 || to.major != from.major ? "minors" : "a minor")",
                                  wayOn: "upgrade to \(next) first (its newest patch): set member.binary to it and run up, then to \(to.line)", source: upgradePolicy)
        },
        Rule(name: "3.5.32-before-3.6", source: guide36) { member, from, facts in
            guard from.line == "3.5", facts.target.line == "3.6", from < EtcdVersion(3, 5, 32) else { return nil }
            return UpgradeRefusal(rule: "3.5.32-before-3.6", member: member,
                                  reason: "runs etcd \(from): 3.6 needs every member on 3.5.32 or later first (learners promoted under 3.5.1-3.5.19 can turn back into learners, zombie members)",
                                  wayOn: "upgrade to 3.5.32+ first: set member.binary to it and run up", source: guide36)
        },
        Rule(name: "v2store-clean-before-3.6", source: v2StoreGuide) { member, from, facts in
            guard from.line == "3.5", facts.target.line == "3.6" else { return nil }
            switch facts.v2Store[member] {
            case .passed?: return nil
            case .failed(let words)?:
                return UpgradeRefusal(rule: "v2store-clean-before-3.6", member: member,
                                      reason: "etcdutl check v2store on its data dir says: \(words)",
                                      wayOn: "move its v2 data to v3 (etcd's v2 migration guide), or have it write a fresh snapshot (snapshot-count: 1 in etcd:, run up, a few writes, then remove it), then run up again", source: v2StoreGuide)
            case nil:
                return UpgradeRefusal(rule: "v2store-clean-before-3.6", member: member,
                                      reason: "its v2store was not checked (etcdutl check v2store of \(facts.target) did not run on its host)",
                                      wayOn: "put etcdutl \(facts.target) beside member.binary so muster can run it on the hosts, then run up again", source: v2StoreGuide)
            }
        },
        Rule(name: "3.6.11-before-3.7", source: guide37) { member, from, facts in
            guard from.line == "3.6", facts.target.line == "3.7", from < EtcdVersion(3, 6, 11) else { return nil }
            return UpgradeRefusal(rule: "3.6.11-before-3.7", member: member,
                                  reason: "runs etcd \(from): 3.7 needs every member on 3.6.11 or later first",
                                  wayOn: "upgrade to 3.6.11+ first: set member.binary to it and run up", source: guide37)
        },
        Rule(name: "snapshot-under-3.6-before-3.7", source: walUnder36) { member, from, facts in
            guard from.line == "3.6", facts.target.line == "3.7" else { return nil }
            guard let reached = facts.reached36AtIndex else {
                return UpgradeRefusal(rule: "snapshot-under-3.6-before-3.7", member: member,
                                      reason: "muster does not know at which index this cluster reached 3.6, so it cannot tell whether the member's WAL still holds entries written under 3.5",
                                      wayOn: "run up once more with the 3.6 binary (muster then records the index), let every member write a snapshot past it (snapshot-count: 1 in etcd: and a few writes, then remove it), then upgrade", source: walUnder36)
            }
            guard reached > 0 else { return nil }  // founded on 3.6: no 3.5 entries anywhere
            let newest = facts.newestSnapshotIndex[member]
            guard newest.map({ $0 < reached }) ?? true else { return nil }
            return UpgradeRefusal(rule: "snapshot-under-3.6-before-3.7", member: member,
                                  reason: "its newest snapshot (\(newest.map { "index \($0)" } ?? "none")) predates index \(reached), where the cluster reached 3.6: its WAL may still hold entries written under 3.5, which 3.7 cannot replay",
                                  wayOn: "have every member write a snapshot under 3.6 (snapshot-count: 1 in etcd:, run up, a few writes, then remove it and run up), then upgrade", source: walUnder36)
        },
    ]

    /// Every refusal, member by member, rule by rule; empty when the upgrade may roll.
    public static func refusals(_ facts: UpgradeFacts) -> [UpgradeRefusal] {
        facts.running.filter { $0.version != facts.target }.flatMap { running in
            table.compactMap { $0.judge(running.member, running.version, facts) }
        }
    }

    /// The version rules alone (no host facts needed): refused before any check runs on a host.
    public static func versionRefusals(_ facts: UpgradeFacts) -> [UpgradeRefusal] {
        let hostFree: Set<String> = ["no-downgrade", "one-minor-at-a-time", "3.5.32-before-3.6", "3.6.11-before-3.7"]
        return refusals(facts).filter { hostFree.contains($0.rule) }
    }

    /// What the cluster record keeps as the index at which the cluster reached 3.6, from a
    /// verification: nil unless every member answers on 3.6 and the cluster version moved to
    /// 3.6; 0 for a cluster founded now (on 3.6: no 3.5 entry anywhere); else the highest raft
    /// index the members report, past which every entry was written under 3.6.
    public static func reached36AtIndex(serverVersions: [String], clusterVersion: String?, raftIndices: [UInt64],
                                        foundedNow: Bool) -> UInt64? {
        guard !serverVersions.isEmpty, Set(serverVersions.map { EtcdVersion($0)?.line }) == ["3.6"],
              clusterVersion.flatMap(EtcdVersion.init)?.line == "3.6" else { return nil }
        return foundedNow ? 0 : max(1, raftIndices.max() ?? 1)
    }

    /// Whether `etcdutl check v2store` must pass on every member's data dir first.
    public static func needsV2StoreCheck(from: EtcdVersion, to: EtcdVersion) -> Bool {
        from.line == "3.5" && to.line == "3.6"
    }

    /// Whether each member's newest snapshot index must be known first.
    public static func needsSnapshotIndices(from: EtcdVersion, to: EtcdVersion) -> Bool {
        from.line == "3.6" && to.line == "3.7"
    }
}
