import Foundation
// `post` and `Base64Text` are MusterEtcd's own: this helper lives with the tests that fill a
// cluster, not in the product.
@testable import MusterEtcd

/// Many keys per request: a transaction of puts, and a prefix read (what `etcdctl txn` and
/// `etcdctl get --prefix` do), for filling a cluster with data and reading it all back.
extension EtcdClient {
    /// Puts every pair in one transaction, applied at one revision. etcd bounds a transaction
    /// to `--max-txn-ops` operations (128 by default) and its request size (1.5 MiB).
    @discardableResult
    func putAll(_ pairs: [(key: String, value: String)]) async throws(EtcdClientError) -> PutResponse {
        let puts: [[String: any Sendable]] = pairs.map {
            ["request_put": ["key": Base64Text.encode($0.key), "value": Base64Text.encode($0.value)] as [String: any Sendable]]
        }
        return try await post("/v3/kv/txn", ["success": puts])
    }

    /// The keys that start with `prefix`, in key order with their values: from `from` on (the
    /// prefix itself by default), at most `limit` of them (0: all). A caller pages through a
    /// large range by asking again from just after the last key it got.
    func getPrefix(_ prefix: String, from: String? = nil, limit: Int = 0) async throws(EtcdClientError) -> RangeResponse {
        var end = Array(prefix.utf8)
        // The range's end is the prefix with its last byte one higher (etcd's prefix rule).
        while let last = end.last, last == 0xff { end.removeLast() }
        if !end.isEmpty { end[end.count - 1] += 1 }
        var body: [String: any Sendable] = ["key": Base64Text.encode(from ?? prefix),
                                            "range_end": Data(end.isEmpty ? [0] : end).base64EncodedString()]
        if limit > 0 { body["limit"] = String(limit) }
        return try await post("/v3/kv/range", body)
    }
}
