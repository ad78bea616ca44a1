import Foundation

/// A v3 discovery token's keys in a backend etcd, through its JSON gateway: what muster writes
/// before the members start (the size), reads to judge a token (who registered), and deletes
/// once the cluster formed. The layout is etcd's (server/etcdserver/api/v3discovery/discovery.go
/// at v3.6.14): `PREFIX/_config/size`, `PREFIX/members/ID`, `PREFIX` = `/_etcd/registry/TOKEN`.
///
/// Each call goes to the first endpoint that answers; an HTTP answer (an error from etcd) is
/// final, a connection that fails moves on to the next endpoint.
public struct V3DiscoveryRegistry: Sendable {
    public let endpoints: [String]
    public let prefix: String
    public let tls: EtcdTLS?
    public let timeout: TimeInterval

    /// A key registered under the token's `members` prefix, as etcd stored it.
    public struct Registration: Sendable, Equatable {
        public var key: String
        public var value: String
        public var createRevision: Int64
    }

    public init(endpoints: [String], prefix: String, tls: EtcdTLS?, timeout: TimeInterval = 5) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.tls = tls
        self.timeout = timeout
    }

    public var sizeKey: String { prefix + "/_config/size" }
    /// etcd's own prefix for members: no trailing slash (it reads them `WithPrefix` as is).
    public var membersPrefix: String { prefix + "/members" }

    /// `_config/size` = N in decimal, as etcd's `getClusterSize` parses it.
    public func setSize(_ size: Int) async throws(EtcdClientError) {
        let key = sizeKey
        _ = try await onFirstAnswering { client throws(EtcdClientError) in try await client.put(key, String(size)) }
    }

    /// The size key's raw value, `nil` when absent.
    public func size() async throws(EtcdClientError) -> String? {
        let key = sizeKey
        return try await onFirstAnswering { client throws(EtcdClientError) in try await client.get(key).kvs.first?.value }
    }

    /// Every key under the members prefix, in create-revision order (the order etcd takes them in).
    public func registrations() async throws(EtcdClientError) -> [Registration] {
        let key = membersPrefix
        let answer: RangeResponse = try await onFirstAnswering { client throws(EtcdClientError) in
            try await client.post("/v3/kv/range", ["key": Base64Text.encode(key), "range_end": Self.prefixEnd(key)])
        }
        return answer.kvs.map { Registration(key: $0.key, value: $0.value, createRevision: $0.createRevision) }
            .sorted { $0.createRevision < $1.createRevision }
    }

    /// Deletes every key of the token (`PREFIX/` and below). Returns how many there were.
    @discardableResult
    public func deleteAll() async throws(EtcdClientError) -> Int64 {
        let key = prefix + "/"
        let answer: DeleteResponse = try await onFirstAnswering { client throws(EtcdClientError) in
            try await client.post("/v3/kv/deleterange", ["key": Base64Text.encode(key), "range_end": Self.prefixEnd(key)])
        }
        return answer.deleted
    }

    /// etcd's `GetPrefixRangeEnd`: the key with its last byte below 0xff raised by one, base64.
    static func prefixEnd(_ key: String) -> String {
        var bytes = Array(key.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes).base64EncodedString()
            }
            bytes.removeLast()
        }
        return Data([0]).base64EncodedString()
    }

    private func onFirstAnswering<T: Sendable>(_ body: (EtcdClient) async throws(EtcdClientError) -> T) async throws(EtcdClientError) -> T {
        var last = EtcdClientError(kind: .badURL, url: "", message: "no discovery endpoints")
        for endpoint in endpoints {
            do {
                return try await body(EtcdClient(baseURL: endpoint, timeout: timeout, tls: tls))
            } catch {
                if error.kind != .transport { throw error }
                last = error
            }
        }
        throw last
    }
}
