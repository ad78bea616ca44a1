import Foundation
import MusterBasics
import MusterTestSupport
import Testing
@testable import MusterEtcd

/// `etcdctl member list -w json` (3.4 prints IDs as JSON numbers).
private struct CtlMemberList: Decodable {
    struct Header: Decodable { var cluster_id: UInt64; var member_id: UInt64; var raft_term: UInt64 }
    struct Member: Decodable { var ID: UInt64; var name: String?; var peerURLs: [String] }
    var header: Header
    var members: [Member]
}

/// `etcdctl endpoint status -w json`.
private struct CtlEndpointStatus: Decodable {
    struct Status: Decodable {
        struct Header: Decodable { var cluster_id: UInt64; var member_id: UInt64; var raft_term: UInt64 }
        var header: Header
        var leader: UInt64
        var raftTerm: UInt64
        var version: String
    }
    var Endpoint: String
    var Status: Status
}

/// The whole life of one real 3-member cluster: healthy, compared with etcdctl, used as a v2
/// discovery backend, a member added by hand, a member stopped.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct RealClusterTests {
    @Test func realThreeMemberCluster() async throws {
        let cluster = try LocalEtcdCluster()
        defer { cluster.stopAll() }
        try cluster.start()
        try await cluster.waitHealthy()
        let expectation = cluster.expectation()

        try await clientDecodes(cluster)
        try agreesWithEtcdctl(cluster, expectation)
        try await healthyClusterPasses(cluster, expectation)
        try await v2Discovery(cluster)
        try await memberAddedByHand(cluster, expectation)
        try await stoppedMember(cluster, expectation)
    }

    func clientDecodes(_ cluster: LocalEtcdCluster) async throws {
        let client = EtcdClient(baseURL: cluster.node("m1").clientURL + "/", timeout: 5)
        let list = try await client.memberList()
        #expect(list.members.count == 3)
        #expect(Set(list.members.map(\.name)) == ["m1", "m2", "m3"])
        #expect(list.members.allSatisfy { $0.isStarted && !$0.isLearner && $0.clientURLs.count == 1 })
        #expect(list.header.clusterID != 0)

        let status = try await client.status()
        #expect(status.version == "3.4.23" || status.version.hasPrefix("3."))
        #expect(status.leader != 0 && status.raftTerm >= 2 && status.raftIndex > 0 && status.dbSize > 0)
        #expect(status.header.clusterID == list.header.clusterID)

        let health = try await client.health()
        #expect(health.healthy && health.httpStatus == 200)
        let version = try await client.version()
        #expect(version.server == status.version && version.cluster.hasPrefix("3."))
        #expect(try await client.alarms() == [])

        // Keys: put, linearizable and serializable reads, delete.
        let key = "/muster/test/" + UUID().uuidString
        let put = try await client.put(key, "v1 ✓")
        #expect(put.header.revision > 0)
        let other = EtcdClient(baseURL: cluster.node("m3").clientURL)
        #expect(try await other.get(key, linearizable: true).kvs.map(\.value) == ["v1 ✓"])
        let serial = try await other.get(key, linearizable: false)
        #expect(serial.kvs.count <= 1)
        #expect(try await client.delete(key).deleted == 1)
        #expect(try await client.get(key).kvs.isEmpty)
    }

    func agreesWithEtcdctl(_ cluster: LocalEtcdCluster, _ expectation: ClusterExpectation) throws {
        let ctlList = try JSONDecoder().decode(
            CtlMemberList.self, from: cluster.etcdctl(["member", "list", "-w", "json"]).stdout)
        let ctlStatus = try JSONDecoder().decode(
            [CtlEndpointStatus].self, from: cluster.etcdctl(["endpoint", "status", "-w", "json"]).stdout)
        try #require(ctlStatus.count == 3)

        // Our predicted IDs equal what the real cluster reports.
        let byName = Dictionary(uniqueKeysWithValues: ctlList.members.map { ($0.name ?? "", $0.ID) })
        for member in expectation.members {
            #expect(byName[member.name] == member.memberID, "member \(member.name)")
        }
        #expect(ctlList.header.cluster_id == expectation.clusterID)

        // muster's client reports the same as etcdctl: member IDs, leader, raft term, cluster ID.
        let semaphore = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var ours: [(String, EndpointStatus)] = []
        nonisolated(unsafe) var ourList: MemberListResponse?
        Task {
            ourList = try? await EtcdClient(baseURL: cluster.node("m2").clientURL).memberList()
            for node in cluster.nodes {
                if let status = try? await EtcdClient(baseURL: node.clientURL).status() {
                    ours.append((node.clientURL, status))
                }
            }
            semaphore.signal()
        }
        semaphore.wait()
        let list = try #require(ourList)
        #expect(Set(list.members.map(\.id)) == Set(ctlList.members.map(\.ID)))
        #expect(Set(list.members.map(\.idHex)) == Set(ctlList.members.map { String($0.ID, radix: 16) }))
        #expect(list.header.clusterID == ctlList.header.cluster_id)
        try #require(ours.count == 3)
        for (endpoint, status) in ours {
            let ctl = try #require(ctlStatus.first { "http://" + $0.Endpoint == endpoint || $0.Endpoint == endpoint })
            #expect(status.memberID == ctl.Status.header.member_id)
            #expect(status.leader == ctl.Status.leader)
            #expect(status.raftTerm == ctl.Status.raftTerm)
            #expect(status.header.clusterID == ctl.Status.header.cluster_id)
            #expect(status.version == ctl.Status.version)
        }
    }

    func healthyClusterPasses(_ cluster: LocalEtcdCluster, _ expectation: ClusterExpectation) async throws {
        let report = await Verifier(expectation: expectation).run()
        #expect(report.ok, "\(report.table())")
        #expect(report.exitCode == 0)
        #expect(report.checks.count == 11)
        #expect(report.members.count == 3 && report.members.allSatisfy { $0.started })
        #expect(report.endpoints.filter(\.isLeader).count == 1)
        #expect(report.health.allSatisfy { $0.healthy && ($0.tookMilliseconds ?? -1) >= 0 })
        #expect(report.observedClusterID == expectation.clusterID)

        let table = report.table()
        if ProcessInfo.processInfo.environment["MUSTER_SHOW_REPORTS"] != nil { print(table, report.json()) }
        #expect(table.contains("|        ID        | STATUS  |"))
        #expect(table.contains("| RAFT APPLIED INDEX |"))
        #expect(table.contains("PASS  write-read:"))
        #expect(!table.contains("FAIL"))
        for member in expectation.members { #expect(table.contains(EtcdIDs.hex(member.memberID))) }

        // The verify key is gone afterwards.
        let leftovers = try await EtcdClient(baseURL: cluster.node("m1").clientURL).post(
            "/v3/kv/range", ["key": Base64Text.encode(Verifier.keyPrefix),
                             "range_end": Base64Text.encode("/muster/verify0")]) as RangeResponse
        #expect(leftovers.kvs.isEmpty)

        try JSONShape.validate(report.json())
    }

    func v2Discovery(_ cluster: LocalEtcdCluster) async throws {
        let token = UUID().uuidString.lowercased()
        let base = cluster.node("m2").clientURL + "/v2/keys/discovery/" + token
        #expect(try await V2Keys.registeredMembers(discoveryURL: base) == [])  // never used: 404 / 100
        #expect(try await V2Keys.discoverySize(baseURL: base) == nil)
        try await V2Keys.setDiscoverySize(baseURL: base, size: 3)
        #expect(try await V2Keys.discoverySize(baseURL: base) == 3)
        #expect(try await V2Keys.registeredMembers(discoveryURL: base) == [])   // _config hidden

        // What a member writes when it registers.
        let registration = try await HTTP(timeout: 5).send(
            "PUT", base + "/170c2709464bed8b", body: Data("value=etcd1=http://10.0.0.1:2380".utf8),
            contentType: "application/x-www-form-urlencoded")
        #expect(registration.status == 201)
        let registered = try await V2Keys.registeredMembers(discoveryURL: base + "/")
        #expect(registered.map(\.key) == ["170c2709464bed8b"])
        #expect(registered.first?.name == "etcd1" && registered.first?.peerURLs == ["http://10.0.0.1:2380"])
    }

    func memberAddedByHand(_ cluster: LocalEtcdCluster, _ expectation: ClusterExpectation) async throws {
        let port = try FreePorts.pick(1)[0]
        // etcd refuses a new voting member until every member has been connected for 5 s
        // ("etcdserver: unhealthy cluster"): retry, bounded.
        let deadline = Date().addingTimeInterval(30)
        while true {
            do {
                try cluster.etcdctl(["member", "add", "extra", "--peer-urls=http://127.0.0.1:\(port)"])
                break
            } catch let error as LocalProcessError where error.description.contains("unhealthy cluster") && Date() < deadline {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        let report = await Verifier(expectation: expectation).run()
        #expect(report.exitCode == 1)
        let check = try #require(report.check(named: "no-unknown-members"))
        #expect(!check.ok)
        #expect(check.detail.contains("member not in inventory"))
        #expect(check.detail.contains("http://127.0.0.1:\(port)"))
        #expect(report.orderedChecks.first?.ok == false)
        #expect(report.members.contains { !$0.started && $0.status == "unstarted" })
        #expect(report.table().contains("FAIL  no-unknown-members: member not in inventory"))
        // Expected members are still fine.
        #expect(report.check(named: "members-present")?.ok == true)
        #expect(report.check(named: "member-ids")?.ok == true)

        let extra = try #require(report.members.first { !$0.started })
        try cluster.etcdctl(["member", "remove", EtcdIDs.hex(extra.id)])
        let after = await Verifier(expectation: expectation).run()
        #expect(after.ok, "\(after.table())")
    }

    func stoppedMember(_ cluster: LocalEtcdCluster, _ expectation: ClusterExpectation) async throws {
        cluster.stop("m3")  // SIGTERM
        let report = await Verifier(expectation: expectation).run()
        #expect(!report.ok)
        #expect(report.exitCode == 1)
        let healthy = try #require(report.check(named: "endpoints-healthy"))
        #expect(!healthy.ok)
        #expect(healthy.detail.contains("m3"))
        #expect(healthy.detail.contains(cluster.node("m3").clientURL))
        #expect(report.endpoints.first { $0.name == "m3" }?.error != nil)
        #expect(report.health.first { $0.name == "m3" }?.healthy == false)
        // The two live members still agree and serve reads and writes.
        #expect(report.check(named: "members-present")?.ok == true)
        #expect(report.check(named: "cluster-id")?.ok == true)
        let table = report.table()
        if ProcessInfo.processInfo.environment["MUSTER_SHOW_REPORTS"] != nil { print(table) }
        let firstCheck = table.components(separatedBy: "checks:\n")[1]
        #expect(firstCheck.hasPrefix("FAIL  "))
        let document = try JSONShape.validate(report.json())
        if case .bool(let ok)? = document["ok"] { #expect(!ok) } else { Issue.record("no ok in JSON") }

        // Quorum lost: /health answers 503 {"health":"false"}, a result rather than an error.
        cluster.stop("m2")
        let survivor = EtcdClient(baseURL: cluster.node("m1").clientURL, timeout: 10)
        let deadline = Date().addingTimeInterval(30)
        var health = try await survivor.health()
        while health.healthy && Date() < deadline {
            try await Task.sleep(for: .milliseconds(300))
            health = try await survivor.health()
        }
        #expect(!health.healthy)
        #expect(health.httpStatus == 503)
        let lost = await Verifier(expectation: expectation,
                                  clientFactory: { EtcdClient(baseURL: $0, timeout: 3) }).run()
        #expect(lost.exitCode == 1)
        #expect(lost.check(named: "endpoints-healthy")?.detail.contains("m1 (\(cluster.node("m1").clientURL)) unhealthy") == true,
                "\(lost.table())")
        try JSONShape.validate(lost.json())
    }

    /// `GET SERVICE/new?size=N` answers with the discovery URL as text. Served here by a
    /// throwaway one-file HTTP server on 127.0.0.1.
    @Test func discoveryServiceToken() async throws {
        let python = "/usr/bin/python3"
        try #require(FileManager.default.isExecutableFile(atPath: python), "\(python) is needed to serve the fake discovery service")
        let root = try TemporaryDirectory.create(prefix: "muster-disc")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let url = "http://127.0.0.1:2379/v2/keys/discovery/0123abcd"
        try Data((url + "\n").utf8).write(to: URL(fileURLWithPath: root + "/new"))
        let port = try FreePorts.pick(1)[0]
        let server = try ChildProcesses.start(python, ["-m", "http.server", "--bind", "127.0.0.1",
                                                       "--directory", root, String(port)], logPath: nil)
        // SIGKILL: children inherit the test runner's blocked-signal mask, so python would
        // never see a SIGTERM (etcd, in Go, unblocks its own signals).
        defer { ChildProcesses.forceStop(server) }

        var token: String?
        var lastError: (any Error)?
        let deadline = Date().addingTimeInterval(15)
        while token == nil && Date() < deadline {
            do { token = try await DiscoveryService.newToken(serviceURL: "http://127.0.0.1:\(port)/", size: 3) }
            catch { lastError = error; try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(token == url, "\(String(describing: lastError))")

        await #expect(throws: EtcdClientError.self) {
            _ = try await DiscoveryService.newToken(serviceURL: "http://127.0.0.1:\(port)/missing", size: 3)
        }
    }

    /// Nothing listens: failed checks carrying the error, no crash.
    @Test func unreachableEndpoints() async throws {
        let ports = try FreePorts.pick(2)
        let members = ports.enumerated().map { index, port in
            ExpectedMember(name: "h\(index)", memberID: UInt64(index + 1),
                           peerURLs: ["http://127.0.0.1:\(port)"], clientURLs: ["http://127.0.0.1:\(port)"],
                           endpoint: "http://127.0.0.1:\(port)")
        }
        let report = await Verifier(expectation: ClusterExpectation(clusterName: "gone", clusterID: 7, members: members),
                                    clientFactory: { EtcdClient(baseURL: $0, timeout: 2) }).run()
        #expect(report.exitCode == 1)
        #expect(report.checks.allSatisfy { !$0.ok })
        let healthy = try #require(report.check(named: "endpoints-healthy"))
        #expect(healthy.detail.contains("h0") && healthy.detail.contains("h1"))
        #expect(healthy.detail.contains("refused"), "\(healthy.detail)")
        #expect(report.table().contains("FAIL  endpoints-healthy"))
        try JSONShape.validate(report.json())
    }
}

/// A parsed JSON value that keeps bools and numbers apart.
indirect enum AnyJSON: Decodable {
    case null, bool(Bool), number(Double), string(String), array([AnyJSON]), object([String: AnyJSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Double.self) { self = .number(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([AnyJSON].self) { self = .array(v) }
        else { self = .object(try c.decode([String: AnyJSON].self)) }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    subscript(key: String) -> AnyJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

/// Compares a document with the example in Sources/MusterEtcd/VERIFY_JSON.md: the same keys at
/// every level and the same JSON types wherever neither side is null.
enum JSONShape {
    static func documentedExample() throws -> AnyJSON {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/MusterEtcd/VERIFY_JSON.md")
        let text = try String(contentsOf: doc, encoding: .utf8)
        let block = try #require(text.components(separatedBy: "```json\n").last?.components(separatedBy: "```").first)
        return try JSONDecoder().decode(AnyJSON.self, from: Data(block.utf8))
    }

    @discardableResult
    static func validate(_ json: String) throws -> AnyJSON {
        let actual = try JSONDecoder().decode(AnyJSON.self, from: Data(json.utf8))
        compare(actual, try documentedExample(), path: "$")
        // Stable: keys sorted in the text as well.
        #expect(json.hasPrefix("{\n  \"checks\": "))
        return actual
    }

    static func compare(_ actual: AnyJSON, _ example: AnyJSON, path: String) {
        if actual.kind == "null" || example.kind == "null" { return }
        #expect(actual.kind == example.kind, "\(path): \(actual.kind), documented \(example.kind)")
        switch (actual, example) {
        case (.object(let a), .object(let e)):
            #expect(Set(a.keys) == Set(e.keys), "\(path): keys differ from VERIFY_JSON.md")
            for (key, value) in a { if let documented = e[key] { compare(value, documented, path: "\(path).\(key)") } }
        case (.array(let a), .array(let e)):
            if let first = e.first { for (index, value) in a.enumerated() { compare(value, first, path: "\(path)[\(index)]") } }
        default: break
        }
    }
}
