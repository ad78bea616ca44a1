import Foundation

/// `POST /v3/cluster/member/add`: the added member and the member list as etcd now has it.
public struct MemberAddResponse: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public var member: EtcdMember
    public var members: [EtcdMember]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        header = try c.header()
        member = try c.decode(EtcdMember.self, forKey: AnyKey("member"))
        members = try c.flexArray([EtcdMember].self, AnyKey("members"))
    }
}

/// Runtime reconfiguration through the JSON gateway (what `etcdctl member add/promote/remove`
/// do). IDs travel as decimal strings: the gateway's JSON mapping of uint64.
extension EtcdClient {
    public func memberAdd(peerURLs: [String], isLearner: Bool) async throws(EtcdClientError) -> MemberAddResponse {
        try await post("/v3/cluster/member/add", ["peerURLs": peerURLs, "isLearner": isLearner])
    }

    /// Refused by etcd ("can only promote a learner member which is in sync with leader") until
    /// the learner has caught up: callers retry, bounded.
    @discardableResult
    public func memberPromote(id: UInt64) async throws(EtcdClientError) -> MemberListResponse {
        try await post("/v3/cluster/member/promote", ["ID": String(id)])
    }

    /// `etcdctl member update ID --peer-urls=...`: the member keeps its ID and data; its peers
    /// dial the new URLs from now on (the member itself must listen there: restart it after).
    @discardableResult
    public func memberUpdate(id: UInt64, peerURLs: [String]) async throws(EtcdClientError) -> MemberListResponse {
        try await post("/v3/cluster/member/update", ["ID": String(id), "peerURLs": peerURLs])
    }

    @discardableResult
    public func memberRemove(id: UInt64) async throws(EtcdClientError) -> MemberListResponse {
        try await post("/v3/cluster/member/remove", ["ID": String(id)])
    }
}

extension EtcdClient {
    /// `POST /v3/maintenance/transfer-leadership`: sent to the leader, which hands over to
    /// `target` (what `etcdctl move-leader` does).
    public func moveLeader(to target: UInt64) async throws(EtcdClientError) {
        struct Empty: Decodable {}
        let _: Empty = try await post("/v3/maintenance/transfer-leadership", ["targetID": String(target)])
    }
}
