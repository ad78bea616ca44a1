import Testing
import MusterYAML
@testable import MusterInventory

/// The profiles' facts, each as etcd-facts.md gives it with its source, and the key table: a key
/// the members' line removed is refused at its place naming its replacement, a key 3.6 renamed
/// is rendered under its new name.
@Suite struct EtcdVersionProfileTests {
    private func profile(_ version: String) throws -> EtcdVersionProfile { try EtcdVersionProfile(version) }

    @Test func discoveryProtocolsFollowTheLine() throws {
        #expect(try profile("3.4.23").discoveryProtocols == [.v2])
        #expect(try profile("3.5.30").discoveryProtocols == [.v2])
        #expect(try profile("3.6.14").discoveryProtocols == [.v3, .v2])
        #expect(try profile("3.6.14").preferredDiscoveryProtocol == .v3)
        #expect(try profile("3.6.14").v2DiscoveryDeprecated)
        #expect(try profile("3.7.1").discoveryProtocols == [.v3])
        #expect(try !profile("3.7.1").speaks(.v2))
        #expect(try profile("3.5.16").servesV2API && !profile("3.6.0").servesV2API)
    }

    @Test func toolsEndpointsAndMembership() throws {
        #expect(try profile("3.4.23").restoreTool == .etcdctl)
        #expect(try profile("3.5.16").restoreTool == .etcdutl)
        #expect(try profile("3.7.1").restoreTool == .etcdutl)
        // A snapshot of a newer minor never restores onto older members (etcd has no downgrade
        // of a data dir); clusterVersion is MAJOR.MINOR.0 in the snapshot's cluster bucket.
        #expect(try profile("3.5.16").runsDataWritten(by: EtcdVersion(3, 4, 0)))
        #expect(try profile("3.5.16").runsDataWritten(by: EtcdVersion(3, 5, 0)))
        #expect(try !profile("3.5.30").runsDataWritten(by: EtcdVersion(3, 6, 0)))
        #expect(try !profile("3.4.23").runsDataWritten(by: EtcdVersion(3, 5, 0)))
        #expect(try profile("3.4.23").dnsSRVNeedsTLS && !profile("3.5.16").dnsSRVNeedsTLS)
        // etcd issue 21640: strict reconfig check refuses an add while a voter is down until
        // 3.5.30 and 3.6.11.
        #expect(try profile("3.5.29").refusesAddWhileVoterDown)
        #expect(try !profile("3.5.30").refusesAddWhileVoterDown)
        #expect(try profile("3.6.10").refusesAddWhileVoterDown)
        #expect(try !profile("3.6.11").refusesAddWhileVoterDown)
        #expect(try !profile("3.7.0").refusesAddWhileVoterDown)
        let three = [EtcdOption(key: "max-learners", value: .int(3))]
        #expect(try profile("3.6.14").learnerLimit(options: three) == 3)
        #expect(try profile("3.6.14").learnerLimit(options: []) == 1)
        #expect(try profile("3.5.30").learnerLimit(options: three) == 1, "fixed at 1 before 3.6")
        #expect(try profile("3.6.14").defaultSnapshotCount == 10_000 && profile("3.5.16").defaultSnapshotCount == 100_000)
    }

    @Test(arguments: ["3.8.0", "3.3.13", "4.0.0", "2.3.8"])
    func aLineMusterDoesNotKnowIsRefused(_ version: String) {
        #expect(throws: EtcdVersionProfile.UnknownLine.self) { try EtcdVersionProfile(version) }
    }

    @Test func keyVerdictsFollowTheLine() throws {
        #expect(try profile("3.5.16").verdict(forKey: "experimental-initial-corrupt-check") == .accepted)
        #expect(try profile("3.6.14").verdict(forKey: "experimental-initial-corrupt-check") == .featureGate("InitialCorruptCheck"))
        #expect(try profile("3.7.1").verdict(forKey: "experimental-initial-corrupt-check") == .removed(replacement: "feature-gates: InitialCorruptCheck=true (or =false)"))
        #expect(try profile("3.6.14").verdict(forKey: "experimental-corrupt-check-time") == .renamed(to: "corrupt-check-time"))
        #expect(try profile("3.7.1").verdict(forKey: "experimental-corrupt-check-time") == .removed(replacement: "corrupt-check-time"))
        #expect(try profile("3.5.16").verdict(forKey: "max-learners") == .notYet(since: "3.6"))
        #expect(try profile("3.6.14").verdict(forKey: "max-learners") == .accepted)
        if case .removed = try profile("3.6.14").verdict(forKey: "enable-v2") {} else { Issue.record("3.6 serves no v2 API") }
        #expect(try profile("3.7.1").verdict(forKey: "heartbeat-interval") == .accepted)
        #expect(try profile("3.4.23").verdict(forKey: "backend-bbolt-freelist-type") == .accepted, "a key of 3.4 already")
        #expect(try profile("3.6.14").verdict(forKey: "experimental-backend-bbolt-freelist-type") == .renamed(to: "backend-bbolt-freelist-type"))
    }

    @Test func on36RenamedKeysAndFeatureGatesAreRenderedUnderTheirNewNames() throws {
        let options = [EtcdOption(key: "experimental-initial-corrupt-check", value: .bool(true)),
                       EtcdOption(key: "experimental-compaction-batch-limit", value: .int(500)),
                       EtcdOption(key: "feature-gates", value: .string("StopGRPCServiceOnDefrag=true")),
                       EtcdOption(key: "experimental-compact-hash-check-enabled", value: .bool(false))]
        #expect(try profile("3.6.14").rendered(options) == [
            EtcdOption(key: "compaction-batch-limit", value: .int(500)),
            EtcdOption(key: "feature-gates", value: .string("StopGRPCServiceOnDefrag=true,InitialCorruptCheck=true,CompactHashCheck=false")),
        ])
        #expect(try profile("3.5.16").rendered(Array(options.prefix(2))) == Array(options.prefix(2)), "3.5 reads them as written")
    }

    // MARK: refused at FILE:LINE:COL

    private let hosts = "hosts:\n  a: { address: 10.0.0.1 }\n"

    private func refusal(_ text: String, versions: [String: String]) throws -> [Diagnostic] {
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        do {
            try inventory.check(memberVersions: versions)
            Issue.record("the inventory passed for \(versions)")
            return []
        } catch let error as InventoryError {
            return error.diagnostics
        }
    }

    @Test func a37MemberWithAKey37RemovedIsRefusedAtTheKeyNamingItsReplacement() throws {
        let text = hosts + "clusters:\n  main:\n    members: [a]\n    etcd:\n      heartbeat-interval: 100\n      experimental-initial-corrupt-check: true\n"
        let found = try refusal(text, versions: ["main": "3.7.1"])
        expectDiagnostic(found, line: 8, column: 7, containing: "etcd key 'experimental-initial-corrupt-check' of cluster 'main' is gone in etcd 3.7 (its members run 3.7.1)")
        expectDiagnostic(found, line: 8, column: 7, containing: "replaced by feature-gates: InitialCorruptCheck=true")
        #expect(found.count == 1)
        // The same inventory for 3.6 members loads: the key becomes a feature gate.
        try InventoryLoader.parse(text, file: "inv.yml").check(memberVersions: ["main": "3.6.14"])
    }

    @Test func a37MemberWithARenamedKeyIsRefusedNamingTheNewKey() throws {
        let text = hosts + "clusters:\n  main: { members: [a], etcd: { experimental-watch-progress-notify-interval: 10000000000 } }\n"
        let found = try refusal(text, versions: ["main": "3.7.1"])
        expectDiagnostic(found, line: 4, column: 33, containing: "replaced by watch-progress-notify-interval")
    }

    @Test func a36MemberWithTheOldAndTheNewNameIsRefused() throws {
        let text = hosts + "clusters:\n  main:\n    members: [a]\n    etcd: { experimental-max-learners: 2, max-learners: 3 }\n"
        let found = try refusal(text, versions: ["main": "3.6.14"])
        expectDiagnostic(found, line: 6, column: 13, containing: "is the old name of 'max-learners', which is set too")
    }

    @Test func a35MemberWithA36KeyIsRefused() throws {
        let text = hosts + "clusters:\n  main:\n    members: [a]\n    etcd: { max-learners: 3 }\n"
        let found = try refusal(text, versions: ["main": "3.5.16"])
        expectDiagnostic(found, line: 6, column: 13, containing: "is a key of etcd 3.6 and later; its members run etcd 3.5.16")
    }

    @Test func a36MemberWithEnableV2IsRefused() throws {
        let text = hosts + "clusters:\n  main:\n    members: [a]\n    etcd: { enable-v2: true }\n"
        let found = try refusal(text, versions: ["main": "3.6.14"])
        expectDiagnostic(found, line: 6, column: 13, containing: "3.6 serves no v2 API")
    }

    @Test func aFeatureGateSwitchMustBeABoolean() throws {
        let text = hosts + "clusters:\n  main:\n    members: [a]\n    etcd: { experimental-initial-corrupt-check: 'yes' }\n"
        let found = try refusal(text, versions: ["main": "3.6.14"])
        expectDiagnostic(found, line: 6, column: 13, containing: "must be true or false: etcd 3.6 reads it as feature gate InitialCorruptCheck")
    }

    @Test func anUnknownLineIsRefusedAtTheClustersMember() throws {
        let text = hosts + "member: { version: 3.5.16 }\nclusters:\n  main:\n    members: [a]\n    member: { version: 3.8.0 }\n  other: { members: [a], client_port: 3379, peer_port: 3380 }\n"
        let found = try refusal(text, versions: ["main": "3.8.0", "other": "3.5.16"])
        expectDiagnostic(found, line: 7, column: 13, containing: "cluster 'main': etcd 3.8.0 is not a line muster knows (3.4, 3.5, 3.6, 3.7)")
        #expect(found.count == 1)
    }

    @Test func eachClusterIsCheckedAgainstItsOwnLine() throws {
        // The backend on 3.5 keeps enable-v2; the 3.7 cluster may not use a 3.6-renamed key.
        let text = hosts + "clusters:\n  disco: { members: [a], tls: false, etcd: { enable-v2: true } }\n  main: { members: [a], client_port: 3379, peer_port: 3380, etcd: { experimental-memory-mlock: true } }\n"
        let found = try refusal(text, versions: ["disco": "3.5.16", "main": "3.7.1"])
        #expect(found.count == 1)
        expectDiagnostic(found, line: 5, column: 69, containing: "replaced by memory-mlock")
    }
}

/// `clusters.NAME.member`: a cluster's own binary, version and etcdctl, read like the
/// inventory's `member:`.
@Suite struct ClusterMemberTests {
    @Test func aClustersMemberOverridesTheInventorysForThatClusterOnly() throws {
        let text = "hosts:\n  a: { address: 10.0.0.1 }\nmember: { binary: /opt/etcd-3.5/etcd, supervisor: process }\nclusters:\n  main:\n    members: [a]\n    member: { binary: /opt/etcd-3.6/etcd, version: 3.6.14, etcdctl: /opt/etcd-3.6/etcdctl }\n  other: { members: [a], client_port: 3379, peer_port: 3380 }\n"
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        #expect(inventory.memberSettings(of: "main").binary == "/opt/etcd-3.6/etcd")
        #expect(inventory.memberSettings(of: "main").version == "3.6.14")
        #expect(inventory.memberSettings(of: "main").etcdctl == "/opt/etcd-3.6/etcdctl")
        #expect(inventory.memberSettings(of: "other").binary == "/opt/etcd-3.5/etcd")
        #expect(inventory.memberSettings(of: "other").version == nil)
        #expect(inventory.supervisorChoice(on: "a") == .process, "the supervisor stays the inventory's")
    }

    @Test func aClustersMemberIsCheckedWhereItIsWritten() {
        let bad = "hosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main:\n    members: [a]\n    member: { version: '3.6', supervisor: systemd }\n"
        let found = diagnostics(of: bad)
        expectDiagnostic(found, line: 6, column: 24, containing: "member version '3.6' is not like 3.4.23")
        expectDiagnostic(found, line: 6, column: 31, containing: "unknown key 'supervisor' in member of cluster 'main'")
    }
}

/// v2 discovery against the lines: 3.6 and 3.7 members prefer v3; forced to v2, 3.7 members
/// cannot use it, and a 3.6 backend cannot serve it.
@Suite struct V2DiscoveryLineTests {
    private func text(protocol forced: String?) -> String {
        "hosts:\n  a: { address: 10.0.0.1 }\n  b: { address: 10.0.0.2 }\nclusters:\n  disco: { members: [a], tls: false }\n  main:\n    members: [b]\n    bootstrap: { discovery: { cluster: disco, size: 1\(forced.map { ", protocol: \($0)" } ?? "") } }\n"
    }

    private func found(_ versions: [String: String], protocol forced: String? = nil) throws -> [Diagnostic] {
        do {
            try InventoryLoader.parse(text(protocol: forced), file: "inv.yml").check(memberVersions: versions)
            return []
        } catch let error as InventoryError {
            return error.diagnostics
        }
    }

    @Test func newerMembersThroughA35BackendPassWithV3OrForcedV2On36() throws {
        #expect(try found(["disco": "3.5.16", "main": "3.6.14"]).isEmpty)
        #expect(try found(["disco": "3.5.16", "main": "3.7.1"]).isEmpty, "3.7 chooses v3")
        #expect(try found(["disco": "3.5.16", "main": "3.6.14"], protocol: "v2").isEmpty)
    }

    @Test func a37ClusterForcedToV2IsRefusedAtItsProtocol() throws {
        let found = try found(["disco": "3.5.16", "main": "3.7.1"], protocol: "v2")
        #expect(found.contains { $0.mark.line == 8 && $0.message.contains("etcd 3.7.1 has no v2 discovery") }, "\(found)")
    }

    @Test func a36BackendOfAV2ClusterIsRefusedNamingBothClusters() throws {
        let found = try found(["disco": "3.6.14", "main": "3.5.16"])
        #expect(found.contains { $0.mark.line == 8 && $0.message.contains("cluster 'main' uses v2 discovery through cluster 'disco', but 'disco' runs etcd 3.6.14, which serves no v2 keys API") }, "\(found)")
    }
}
