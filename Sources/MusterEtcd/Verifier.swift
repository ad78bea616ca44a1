import Foundation
import MusterBasics

/// A member as the inventory and the planner describe it.
public struct ExpectedMember: Sendable, Equatable {
    public var name: String
    /// The ID the planner predicted (`EtcdIDs.memberID`); 0 when none was predicted.
    public var memberID: UInt64
    public var peerURLs: [String]
    public var clientURLs: [String]
    /// The client URL muster queries (may differ from clientURLs, e.g. through a tunnel's
    /// factory mapping in `Verifier.clientFactory`).
    public var endpoint: String

    public init(name: String, memberID: UInt64, peerURLs: [String], clientURLs: [String], endpoint: String) {
        self.name = name; self.memberID = memberID; self.peerURLs = peerURLs
        self.clientURLs = clientURLs; self.endpoint = endpoint
    }
}

public struct ClusterExpectation: Sendable, Equatable {
    public var clusterName: String
    /// The cluster ID the planner predicted (`EtcdIDs.clusterID`); 0 when none was predicted.
    public var clusterID: UInt64
    public var members: [ExpectedMember]
    /// Largest allowed difference between the members' raft indexes.
    public var raftIndexSpread: UInt64

    public init(clusterName: String, clusterID: UInt64, members: [ExpectedMember], raftIndexSpread: UInt64 = 50) {
        self.clusterName = clusterName; self.clusterID = clusterID
        self.members = members; self.raftIndexSpread = raftIndexSpread
    }
}

/// Verifies a running cluster against its expectation, read-only except for one short-lived key
/// under `Verifier.keyPrefix`.
public struct Verifier: Sendable {
    public static let keyPrefix = "/muster/verify/"

    public let expectation: ClusterExpectation
    /// The client for each expected member: members that serve clients on their own loopback
    /// share one endpoint string, so a tunnel is chosen per member, not per URL.
    public let memberClient: @Sendable (ExpectedMember) -> EtcdClient

    /// `clientFactory` turns an expected member's endpoint into a client.
    public init(expectation: ClusterExpectation,
                clientFactory: @escaping @Sendable (String) -> EtcdClient = { EtcdClient(baseURL: $0) }) {
        self.expectation = expectation
        self.memberClient = { clientFactory($0.endpoint) }
    }

    /// `memberClient` picks each member's client; `--via-ssh` maps it to that member's tunnel.
    public init(expectation: ClusterExpectation, memberClient: @escaping @Sendable (ExpectedMember) -> EtcdClient) {
        self.expectation = expectation
        self.memberClient = memberClient
    }

    /// Queries every endpoint directly, over TLS with `tls` (the cluster CA and muster's client
    /// certificate) when set.
    public init(expectation: ClusterExpectation, tls: EtcdTLS?, timeout: TimeInterval = 5) {
        self.init(expectation: expectation, clientFactory: { EtcdClient(baseURL: $0, timeout: timeout, tls: tls) })
    }

    /// What one endpoint answered.
    struct Probe: Sendable {
        var member: ExpectedMember
        var status: Result<EndpointStatus, EtcdClientError>
        var health: Result<HealthResult, EtcdClientError>
    }

    public func run() async -> VerificationReport {
        let expected = expectation.members
        let clients = expected.map { memberClient($0) }

        // Status and health of every endpoint, in parallel.
        let probes: [Probe] = await withTaskGroup(of: (Int, Probe).self) { group in
            for (index, member) in expected.enumerated() {
                let client = clients[index]
                group.addTask {
                    async let status = Verifier.result { () async throws(EtcdClientError) in try await client.status() }
                    async let health = Verifier.result { () async throws(EtcdClientError) in try await client.health() }
                    return (index, Probe(member: member, status: await status, health: await health))
                }
            }
            var collected = [Probe?](repeating: nil, count: expected.count)
            for await (index, probe) in group { collected[index] = probe }
            return collected.compactMap { $0 }
        }

        // The cluster's view of membership and alarms, from the first endpoint that answers.
        var memberList: Result<MemberListResponse, EtcdClientError> =
            .failure(EtcdClientError(kind: .transport, url: "", message: "no endpoint to ask"))
        var alarms: Result<[EtcdAlarm], EtcdClientError> = memberList.map { _ in [] }
        var answering: EtcdClient?
        for (index, client) in clients.enumerated() {
            if case .failure = probes[index].status { continue }
            memberList = await Verifier.result { () async throws(EtcdClientError) in try await client.memberList() }
            if case .success = memberList {
                answering = client
                alarms = await Verifier.result { () async throws(EtcdClientError) in try await client.alarms() }
                break
            }
        }
        if answering == nil, let first = clients.first, case .failure = memberList {
            // Nobody answered status; still try for a meaningful error.
            memberList = await Verifier.result { () async throws(EtcdClientError) in try await first.memberList() }
            if case .success = memberList {
                answering = first
                alarms = await Verifier.result { () async throws(EtcdClientError) in try await first.alarms() }
            } else {
                alarms = memberList.map { _ in [] }
            }
        }

        let roundTrip = await writeReadRoundTrip(writer: answering, probes: probes, clients: clients)

        var report = VerificationReport(clusterName: expectation.clusterName,
                                        expectedClusterID: expectation.clusterID)
        if case .success(let list) = memberList {
            report.observedClusterID = list.header.clusterID
            report.members = list.members.map {
                VerificationReport.MemberRow(id: $0.id, started: $0.isStarted, name: $0.name,
                                             peerURLs: $0.peerURLs, clientURLs: $0.clientURLs,
                                             isLearner: $0.isLearner)
            }
        }
        report.endpoints = probes.map { probe in
            switch probe.status {
            case .success(let status):
                return .init(endpoint: probe.member.endpoint, name: probe.member.name,
                             id: status.memberID, version: status.version, dbSize: status.dbSize,
                             dbSizeInUse: status.dbSizeInUse, isLeader: status.isLeader,
                             isLearner: status.isLearner, raftTerm: status.raftTerm,
                             raftIndex: status.raftIndex, raftAppliedIndex: status.raftAppliedIndex,
                             leader: status.leader, errors: status.errors, error: nil)
            case .failure(let error):
                return .init(endpoint: probe.member.endpoint, name: probe.member.name, error: error.description)
            }
        }
        report.health = probes.map { probe in
            switch probe.health {
            case .success(let health):
                return .init(endpoint: probe.member.endpoint, name: probe.member.name,
                             healthy: health.healthy, tookMilliseconds: health.latency.milliseconds,
                             error: health.healthy ? nil : health.reason)
            case .failure(let error):
                return .init(endpoint: probe.member.endpoint, name: probe.member.name,
                             healthy: false, tookMilliseconds: nil, error: error.description)
            }
        }
        if let answering, let version = try? await answering.version(), !version.cluster.isEmpty {
            report.clusterVersion = version.cluster
        }
        report.checks = Checks(expectation: expectation, probes: probes, memberList: memberList,
                               alarms: alarms, roundTrip: roundTrip).all()
        return report
    }

    /// Writes a fresh key through one member, reads it back linearizably through every member
    /// that answered status, then deletes it. Returns nil on success, else what went wrong.
    func writeReadRoundTrip(writer: EtcdClient?, probes: [Probe], clients: [EtcdClient]) async -> [String] {
        guard let writer else { return ["no member answered, nothing written"] }
        let key = Verifier.keyPrefix + UUID().uuidString.lowercased()
        let value = "muster verify \(UUID().uuidString)"
        do {
            try await writer.put(key, value)
        } catch {
            return ["write of \(key) through \(writer.baseURL) failed: \(error)"]
        }
        var problems: [String] = []
        for (index, client) in clients.enumerated() {
            let name = probes[index].member.name
            do {
                let range = try await client.get(key, linearizable: true)
                let values = range.kvs.map(\.value)
                if values != [value] {
                    problems.append("\(name): linearizable read of \(key) returned \(values), wrote \"\(value)\"")
                }
            } catch {
                problems.append("\(name): linearizable read failed: \(error)")
            }
        }
        do {
            try await writer.delete(key)
        } catch {
            problems.append("removing \(key) failed: \(error)")
        }
        return problems
    }

    static func result<T>(_ body: () async throws(EtcdClientError) -> T) async -> Result<T, EtcdClientError> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// The checks, each computed from the answers gathered once.
struct Checks {
    let expectation: ClusterExpectation
    let probes: [Verifier.Probe]
    let memberList: Result<MemberListResponse, EtcdClientError>
    let alarms: Result<[EtcdAlarm], EtcdClientError>
    let roundTrip: [String]

    typealias Check = VerificationReport.Check

    func all() -> [Check] {
        [reachable(), membersPresent(), noUnknownMembers(), memberIDs(), clusterID(), oneLeader(),
         oneTerm(), indexSpread(), noAlarms(), oneVersion(), writeRead()]
    }

    /// "m1 (http://...)".
    func label(_ member: ExpectedMember) -> String { "\(member.name) (\(member.endpoint))" }

    var statuses: [(ExpectedMember, EndpointStatus)] {
        probes.compactMap { probe in (try? probe.status.get()).map { (probe.member, $0) } }
    }

    /// Members whose status is unknown, as a reason fragment, or nil when all answered.
    var silent: String? {
        let missing = probes.compactMap { probe -> String? in
            if case .failure(let error) = probe.status { return "\(probe.member.name): \(error.message)" }
            return nil
        }
        return missing.isEmpty ? nil : "no status from " + missing.joined(separator: "; ")
    }

    func reachable() -> Check {
        var problems: [String] = []
        for probe in probes {
            switch probe.health {
            case .success(let health) where health.healthy: break
            case .success(let health):
                problems.append("\(label(probe.member)) unhealthy: \(health.reason)")
            case .failure(let error):
                problems.append("\(label(probe.member)) unreachable: \(error.message)")
            }
            if case .failure(let error) = probe.status, case .success(let health) = probe.health, health.healthy {
                problems.append("\(label(probe.member)) status failed: \(error.message)")
            }
        }
        if problems.isEmpty {
            return Check(name: "endpoints-healthy", ok: true,
                         detail: "\(probes.count) of \(probes.count) endpoints healthy")
        }
        return Check(name: "endpoints-healthy", ok: false, detail: problems.joined(separator: "; "))
    }

    /// The listed member that corresponds to an expected one: by name, else by peer URLs
    /// (an unstarted member has no name yet).
    func match(_ expected: ExpectedMember, in members: [EtcdMember]) -> EtcdMember? {
        members.first { $0.name == expected.name && !$0.name.isEmpty }
            ?? members.first { Set($0.peerURLs) == Set(expected.peerURLs) && !$0.peerURLs.isEmpty }
    }

    func listFailure(_ name: String) -> Check? {
        if case .failure(let error) = memberList {
            return Check(name: name, ok: false, detail: "no member list: \(error.description)")
        }
        return nil
    }

    func membersPresent() -> Check {
        if let failed = listFailure("members-present") { return failed }
        let members = (try? memberList.get().members) ?? []
        var problems: [String] = []
        for expected in expectation.members {
            guard let found = match(expected, in: members) else {
                problems.append("\(expected.name) missing from the member list"); continue
            }
            if !found.isStarted {
                problems.append("\(expected.name) (\(found.idHex)) is unstarted")
            }
            if Set(found.peerURLs) != Set(expected.peerURLs) {
                problems.append("\(expected.name) peer URLs \(found.peerURLs.joined(separator: ",")), expected \(expected.peerURLs.joined(separator: ","))")
            }
        }
        if problems.isEmpty {
            return Check(name: "members-present", ok: true,
                         detail: "\(expectation.members.count) of \(expectation.members.count) members present and started")
        }
        return Check(name: "members-present", ok: false, detail: problems.joined(separator: "; "))
    }

    func noUnknownMembers() -> Check {
        if let failed = listFailure("no-unknown-members") { return failed }
        let members = (try? memberList.get().members) ?? []
        let known = Set(expectation.members.compactMap { match($0, in: members)?.id })
        let unknown = members.filter { !known.contains($0.id) }
        if unknown.isEmpty {
            return Check(name: "no-unknown-members", ok: true, detail: "every listed member is in the inventory")
        }
        let described = unknown.map { member in
            "\(member.isStarted ? member.name : "unstarted member") \(member.idHex) (peer \(member.peerURLs.joined(separator: ",")))"
        }
        return Check(name: "no-unknown-members", ok: false,
                     detail: "member not in inventory: " + described.joined(separator: "; "))
    }

    func memberIDs() -> Check {
        if let failed = listFailure("member-ids") { return failed }
        let members = (try? memberList.get().members) ?? []
        var problems: [String] = []
        var compared = 0
        for expected in expectation.members where expected.memberID != 0 {
            guard let found = match(expected, in: members) else { continue }  // reported by members-present
            compared += 1
            if found.id != expected.memberID {
                problems.append("\(expected.name) has ID \(found.idHex), predicted \(EtcdIDs.hex(expected.memberID))")
            }
        }
        // Members must also agree about who they are.
        for (member, status) in statuses {
            if let found = match(member, in: members), found.id != status.memberID {
                problems.append("\(member.name) answers as \(EtcdIDs.hex(status.memberID)), listed as \(found.idHex)")
            }
        }
        if problems.isEmpty {
            return Check(name: "member-ids", ok: true,
                         detail: compared == 0 ? "no member IDs predicted" : "\(compared) member IDs as predicted")
        }
        return Check(name: "member-ids", ok: false, detail: problems.joined(separator: "; "))
    }

    func clusterID() -> Check {
        var seen: [String: [String]] = [:]
        if case .success(let list) = memberList { seen[EtcdIDs.hex(list.header.clusterID), default: []].append("member list") }
        for (member, status) in statuses { seen[EtcdIDs.hex(status.header.clusterID), default: []].append(member.name) }
        if seen.isEmpty {
            return Check(name: "cluster-id", ok: false, detail: silent ?? "no member answered")
        }
        if seen.count > 1 {
            let parts = seen.keys.sorted().map { "\($0) from \(seen[$0]!.joined(separator: ","))" }
            return Check(name: "cluster-id", ok: false, detail: "members disagree: " + parts.joined(separator: "; "))
        }
        let observed = seen.keys.first!
        if expectation.clusterID != 0 && observed != EtcdIDs.hex(expectation.clusterID) {
            return Check(name: "cluster-id", ok: false,
                         detail: "cluster ID \(observed), predicted \(EtcdIDs.hex(expectation.clusterID))")
        }
        return Check(name: "cluster-id", ok: true,
                     detail: expectation.clusterID == 0 ? "cluster ID \(observed) (none predicted)"
                                                        : "cluster ID \(observed) as predicted")
    }

    func oneLeader() -> Check {
        let answered = statuses
        let leaders = Set(answered.map(\.1.leader))
        let selfLeaders = answered.filter { $0.1.isLeader }.map(\.0.name)
        var problems: [String] = []
        if answered.isEmpty { problems.append("no member answered") }
        if answered.contains(where: { $0.1.leader == 0 }) {
            problems.append("no leader seen by " + answered.filter { $0.1.leader == 0 }.map(\.0.name).joined(separator: ","))
        }
        if leaders.subtracting([0]).count > 1 {
            problems.append("members name different leaders: " + answered.map { "\($0.0.name)→\(EtcdIDs.hex($0.1.leader))" }.joined(separator: ", "))
        }
        if selfLeaders.count > 1 { problems.append("several members claim leadership: " + selfLeaders.joined(separator: ",")) }
        if let silent { problems.append(silent) }
        if problems.isEmpty {
            let leader = answered[0].1.leader
            let name = answered.first { $0.1.memberID == leader }?.0.name ?? "a member outside the inventory"
            return Check(name: "one-leader", ok: true,
                         detail: "every member names \(name) (\(EtcdIDs.hex(leader))) as leader")
        }
        return Check(name: "one-leader", ok: false, detail: problems.joined(separator: "; "))
    }

    func oneTerm() -> Check {
        agreement("raft-term", label: "raft terms", value: { String($0.raftTerm) }) { "every member in raft term \($0)" }
    }

    /// A check that every answering member reports the same value (term, version, ...).
    private func agreement(_ name: String, label: String, value: (EndpointStatus) -> String,
                           agreed: (String) -> String) -> Check {
        let groups = Dictionary(grouping: statuses, by: { value($0.1) })
        var problems: [String] = []
        if groups.count > 1 {
            problems.append("\(label) differ: " + groups.keys.sorted().map { key in
                "\(key) on \(groups[key]!.map(\.0.name).joined(separator: ","))"
            }.joined(separator: "; "))
        }
        if groups.isEmpty { problems.append("no member answered") }
        if let silent { problems.append(silent) }
        if problems.isEmpty { return Check(name: name, ok: true, detail: agreed(groups.keys.first!)) }
        return Check(name: name, ok: false, detail: problems.joined(separator: "; "))
    }

    func indexSpread() -> Check {
        let indexes = statuses.map(\.1.raftIndex)
        guard let low = indexes.min(), let high = indexes.max() else {
            return Check(name: "raft-index-spread", ok: false, detail: silent ?? "no member answered")
        }
        let spread = high - low
        var problems: [String] = []
        if spread > expectation.raftIndexSpread {
            let lagging = statuses.filter { high - $0.1.raftIndex > expectation.raftIndexSpread }.map(\.0.name)
            problems.append("raft indexes \(low)...\(high) spread \(spread) > \(expectation.raftIndexSpread) (behind: \(lagging.joined(separator: ",")))")
        }
        if let silent { problems.append(silent) }
        if problems.isEmpty {
            return Check(name: "raft-index-spread", ok: true,
                         detail: "raft indexes \(low)...\(high), spread \(spread) <= \(expectation.raftIndexSpread)")
        }
        return Check(name: "raft-index-spread", ok: false, detail: problems.joined(separator: "; "))
    }

    func noAlarms() -> Check {
        switch alarms {
        case .failure(let error):
            return Check(name: "no-alarms", ok: false, detail: "cannot read alarms: \(error.description)")
        case .success(let list) where list.isEmpty:
            return Check(name: "no-alarms", ok: true, detail: "no alarm raised")
        case .success(let list):
            let names = Dictionary(uniqueKeysWithValues: statuses.map { ($0.1.memberID, $0.0.name) })
            return Check(name: "no-alarms", ok: false, detail: list.map {
                "\($0.alarm) on \(names[$0.memberID] ?? EtcdIDs.hex($0.memberID))"
            }.joined(separator: "; "))
        }
    }

    func oneVersion() -> Check {
        agreement("one-version", label: "server versions", value: \.version) { "every member runs etcd \($0)" }
    }

    func writeRead() -> Check {
        if roundTrip.isEmpty {
            return Check(name: "write-read", ok: true,
                         detail: "a key under \(Verifier.keyPrefix) written, read back linearizably through every member, removed")
        }
        return Check(name: "write-read", ok: false, detail: roundTrip.joined(separator: "; "))
    }
}
