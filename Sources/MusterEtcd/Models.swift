import Foundation
import MusterBasics

/// `header` of every v3 gateway response.
public struct ResponseHeader: Sendable, Equatable, Decodable {
    public var clusterID: UInt64
    public var memberID: UInt64
    public var revision: Int64
    public var raftTerm: UInt64

    public init(clusterID: UInt64 = 0, memberID: UInt64 = 0, revision: Int64 = 0, raftTerm: UInt64 = 0) {
        self.clusterID = clusterID; self.memberID = memberID
        self.revision = revision; self.raftTerm = raftTerm
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        clusterID = try c.flexUInt64(AnyKey("cluster_id"))
        memberID = try c.flexUInt64(AnyKey("member_id"))
        revision = try c.flexInt64(AnyKey("revision"))
        raftTerm = try c.flexUInt64(AnyKey("raft_term"))
    }
}

extension KeyedDecodingContainer where Key == AnyKey {
    func header() throws -> ResponseHeader {
        try decodeIfPresent(ResponseHeader.self, forKey: AnyKey("header")) ?? ResponseHeader()
    }
}

/// One entry of `POST /v3/cluster/member/list`.
public struct EtcdMember: Sendable, Equatable, Decodable {
    public var id: UInt64
    /// Empty while the member has been added but never started (etcdctl's "unstarted").
    public var name: String
    public var peerURLs: [String]
    public var clientURLs: [String]
    public var isLearner: Bool

    public var idHex: String { EtcdIDs.hex(id) }
    public var isStarted: Bool { !name.isEmpty }

    public init(id: UInt64, name: String, peerURLs: [String], clientURLs: [String], isLearner: Bool = false) {
        self.id = id; self.name = name; self.peerURLs = peerURLs
        self.clientURLs = clientURLs; self.isLearner = isLearner
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        id = try c.flexUInt64(AnyKey("ID"))
        name = try c.flexString(AnyKey("name"))
        peerURLs = try c.flexStrings(AnyKey("peerURLs"))
        clientURLs = try c.flexStrings(AnyKey("clientURLs"))
        isLearner = try c.flexBool(AnyKey("isLearner"))
    }
}

public struct MemberListResponse: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public var members: [EtcdMember]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        header = try c.header()
        members = try c.flexArray([EtcdMember].self, AnyKey("members"))
    }
}

/// `POST /v3/maintenance/status`: what `etcdctl endpoint status` shows.
public struct EndpointStatus: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public var version: String
    public var dbSize: Int64
    public var dbSizeInUse: Int64
    public var leader: UInt64
    public var raftIndex: UInt64
    public var raftTerm: UInt64
    public var raftAppliedIndex: UInt64
    public var errors: [String]
    public var isLearner: Bool

    /// The answering member's own ID.
    public var memberID: UInt64 { header.memberID }
    public var isLeader: Bool { leader != 0 && leader == header.memberID }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        header = try c.header()
        version = try c.flexString(AnyKey("version"))
        dbSize = try c.flexInt64(AnyKey("dbSize"))
        dbSizeInUse = try c.flexInt64(AnyKey("dbSizeInUse"))
        leader = try c.flexUInt64(AnyKey("leader"))
        raftIndex = try c.flexUInt64(AnyKey("raftIndex"))
        raftTerm = try c.flexUInt64(AnyKey("raftTerm"))
        raftAppliedIndex = try c.flexUInt64(AnyKey("raftAppliedIndex"))
        errors = try c.flexStrings(AnyKey("errors"))
        isLearner = try c.flexBool(AnyKey("isLearner"))
    }
}

/// `GET /health`. A 503 answer is a result (`healthy == false`), not an error.
public struct HealthResult: Sendable, Equatable {
    public var healthy: Bool
    public var httpStatus: Int
    /// etcd's `reason` field when present (3.4.10+ fills it on failure), else the raw body.
    public var reason: String
    /// Wall time of the request.
    public var latency: Duration
}

/// `GET /version`.
public struct VersionInfo: Sendable, Equatable, Decodable {
    public var server: String
    public var cluster: String

    enum CodingKeys: String, CodingKey {
        case server = "etcdserver", cluster = "etcdcluster"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        server = try c.decodeIfPresent(String.self, forKey: .server) ?? ""
        cluster = try c.decodeIfPresent(String.self, forKey: .cluster) ?? ""
    }
}

public struct KeyValue: Sendable, Equatable, Decodable {
    public var key: String
    public var value: String
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        key = try Base64Text.decode(c.flexString(AnyKey("key")))
        value = try Base64Text.decode(c.flexString(AnyKey("value")))
        createRevision = try c.flexInt64(AnyKey("create_revision"))
        modRevision = try c.flexInt64(AnyKey("mod_revision"))
        version = try c.flexInt64(AnyKey("version"))
    }
}

public struct RangeResponse: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public var kvs: [KeyValue]
    public var count: Int64

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        header = try c.header()
        kvs = try c.flexArray([KeyValue].self, AnyKey("kvs"))
        count = try c.flexInt64(AnyKey("count"))
    }
}

public struct PutResponse: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public init(from decoder: any Decoder) throws {
        header = try decoder.container(keyedBy: AnyKey.self).header()
    }
}

public struct DeleteResponse: Sendable, Equatable, Decodable {
    public var header: ResponseHeader
    public var deleted: Int64
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        header = try c.header()
        deleted = try c.flexInt64(AnyKey("deleted"))
    }
}

/// One raised alarm (`NOSPACE`, `CORRUPT`) on one member.
public struct EtcdAlarm: Sendable, Equatable, Decodable {
    public var memberID: UInt64
    public var alarm: String

    public init(memberID: UInt64, alarm: String) { self.memberID = memberID; self.alarm = alarm }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        memberID = try c.flexUInt64(AnyKey("memberID"))
        // AlarmType NONE is 0 and thus omitted; the gateway writes enum names as strings.
        if let text = try? c.decode(String.self, forKey: AnyKey("alarm")) {
            alarm = text
        } else if let number = try? c.decode(Int.self, forKey: AnyKey("alarm")) {
            alarm = [0: "NONE", 1: "NOSPACE", 2: "CORRUPT"][number] ?? "ALARM(\(number))"
        } else {
            alarm = "NONE"
        }
    }
}

struct AlarmResponse: Decodable {
    var alarms: [EtcdAlarm]
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        alarms = try c.flexArray([EtcdAlarm].self, AnyKey("alarms"))
    }
}

enum Base64Text {
    static func encode(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    static func decode(_ text: String) throws -> String {
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not base64: \(text)"))
        }
        return String(decoding: data, as: UTF8.self)
    }
}
