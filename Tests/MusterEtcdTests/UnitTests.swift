import Foundation
import Testing
@testable import MusterEtcd
import MusterBasics

@Suite struct EtcdIDsTests {
    @Test func hexLikeEtcdctl() {
        #expect(EtcdIDs.hex(1660745283380440459) == "170c2709464bed8b")
        #expect(UInt64("170c2709464bed8b", radix: 16) == 1660745283380440459)
        #expect(EtcdIDs.hex(0x0abc) == "abc")  // no zero padding, as types.ID prints
    }

    /// Values a real etcd 3.4.23 reported for a lone member started with
    /// `--initial-cluster solo=http://127.0.0.1:42380` and the default token `etcd-cluster`.
    @Test func matchesARealLoneMember() {
        let member = EtcdIDs.memberID(peerURLs: ["http://127.0.0.1:42380"], token: "etcd-cluster")
        #expect(member == 7383792418829112008)
        #expect(EtcdIDs.hex(member) == "667880157b8812c8")
        #expect(EtcdIDs.clusterID(memberIDs: [member]) == 15875391935852295136)
    }

    @Test func orderOfInputsDoesNotMatter() {
        let a = EtcdIDs.memberID(peerURLs: ["http://b:2380", "http://a:2380"], token: "t")
        let b = EtcdIDs.memberID(peerURLs: ["http://a:2380", "http://b:2380"], token: "t")
        #expect(a == b)
        #expect(EtcdIDs.memberID(peerURLs: ["http://a:2380"], token: "t")
                != EtcdIDs.memberID(peerURLs: ["http://a:2380"], token: "u"))
        #expect(EtcdIDs.clusterID(memberIDs: [1, 2, 3]) == EtcdIDs.clusterID(memberIDs: [3, 1, 2]))
    }
}

@Suite struct GatewayDecodingTests {
    @Test func statusWithStringsAndOmittedZeros() throws {
        let body = #"{"header":{"cluster_id":"15875391935852295136","member_id":"7383792418829112008","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"24576","leader":"7383792418829112008","raftIndex":"4","raftTerm":"2","raftAppliedIndex":"4","dbSizeInUse":"16384"}"#
        let status = try JSONDecoder().decode(EndpointStatus.self, from: Data(body.utf8))
        #expect(status.header.clusterID == 15875391935852295136)
        #expect(status.memberID == 7383792418829112008)
        #expect(status.isLeader)
        #expect(status.dbSize == 24576)
        #expect(status.errors == [] && status.isLearner == false)

        let sparse = try JSONDecoder().decode(EndpointStatus.self, from: Data(#"{"header":{},"version":"3.5.16"}"#.utf8))
        #expect(sparse.leader == 0 && sparse.raftIndex == 0 && !sparse.isLeader)
    }

    @Test func membersWithNumbersOrStrings() throws {
        let body = #"{"header":{"cluster_id":15875391935852295136},"members":[{"ID":"1660745283380440459","name":"etcd1","peerURLs":["http://a:2380"],"clientURLs":["http://a:2379"]},{"ID":7383792418829112008,"peerURLs":["http://b:2380"],"isLearner":true}]}"#
        let list = try JSONDecoder().decode(MemberListResponse.self, from: Data(body.utf8))
        #expect(list.header.clusterID == 15875391935852295136)
        #expect(list.members.map(\.idHex) == ["170c2709464bed8b", "667880157b8812c8"])
        #expect(list.members[1].isStarted == false && list.members[1].isLearner)
        #expect(list.members[1].clientURLs == [])
    }

    @Test func rangeAndAlarms() throws {
        let range = try JSONDecoder().decode(RangeResponse.self, from: Data(
            #"{"header":{"revision":"7"},"kvs":[{"key":"L211c3Rlci92ZXJpZnkveA==","create_revision":"7","mod_revision":"7","version":"1","value":"aGk="}],"count":"1"}"#.utf8))
        #expect(range.kvs.first?.key == "/muster/verify/x" && range.kvs.first?.value == "hi")
        let empty = try JSONDecoder().decode(RangeResponse.self, from: Data(#"{"header":{}}"#.utf8))
        #expect(empty.kvs.isEmpty && empty.count == 0)
        let alarms = try JSONDecoder().decode(AlarmResponse.self, from: Data(
            #"{"alarms":[{"memberID":"12","alarm":"NOSPACE"},{"memberID":"13"}]}"#.utf8))
        #expect(alarms.alarms == [EtcdAlarm(memberID: 12, alarm: "NOSPACE"), EtcdAlarm(memberID: 13, alarm: "NONE")])
    }
}

@Suite struct OutputFormatTests {
    @Test func humanBytesLikeEtcdctl() {
        #expect(HumanBytes.format(24576) == "25 kB")
        #expect(HumanBytes.format(20480) == "20 kB")
        #expect(HumanBytes.format(16384) == "16 kB")
        #expect(HumanBytes.format(5) == "5 B")
        #expect(HumanBytes.format(1500) == "1.5 kB")
        #expect(HumanBytes.format(2_100_000) == "2.1 MB")
    }

    /// Byte for byte what `etcdctl member list -w table` (3.4.23) printed for the same member.
    @Test func tableLikeEtcdctl() {
        let table = TextTable.render(
            header: ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
            rows: [["667880157b8812c8", "started", "solo", "http://127.0.0.1:42380", "http://127.0.0.1:42379", "false"]])
        #expect(table == """
            +------------------+---------+------+------------------------+------------------------+------------+
            |        ID        | STATUS  | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
            +------------------+---------+------+------------------------+------------------------+------------+
            | 667880157b8812c8 | started | solo | http://127.0.0.1:42380 | http://127.0.0.1:42379 |      false |
            +------------------+---------+------+------------------------+------------------------+------------+

            """)
    }

    @Test func jsonIsSortedAndEscaped() {
        let value = JSONValue.object(["b": .array([.int(-1), .null]), "a": .string("x\"\n"), "c": .object([:])])
        #expect(value.serialized() == "{\n  \"a\": \"x\\\"\\n\",\n  \"b\": [\n    -1,\n    null\n  ],\n  \"c\": {}\n}\n")
    }

    @Test func failedChecksFirstAndExitCode() {
        var report = VerificationReport(clusterName: "c", expectedClusterID: 1)
        report.checks = [.init(name: "a", ok: true, detail: "fine"), .init(name: "b", ok: false, detail: "broken")]
        #expect(report.exitCode == 1)
        #expect(report.orderedChecks.map(\.name) == ["b", "a"])
        let text = report.table()
        let fail = text.range(of: "FAIL  b: broken")!, pass = text.range(of: "PASS  a: fine")!
        #expect(fail.lowerBound < pass.lowerBound)
        report.checks[1].ok = true
        #expect(report.exitCode == 0)
    }
}
