import Foundation

/// Many keys per request: a transaction of puts, and a prefix read (what `etcdctl txn` and
/// `etcdctl get --prefix` do), for filling a cluster with data and reading it all back.
extension EtcdClient {
    /// Puts every pair in one transaction, applied at one revision. etcd bounds a transaction
    /// to `--max-txn-ops` operations (128 by default) and its request size (1.5 MiB).
    @discardableResult
    public func putAll(_ pairs: [(key: String, value: String)]) async throws(EtcdClientError) -> PutResponse {
        let puts: [[String: any Sendable]] = pairs.map {
            ["request_put": ["key": Base64Text.encode($0.key), "value": Base64Text.encode($0.value)] as [String: any Sendable]]
        }
        return try await post("/v3/kv/txn", ["success": puts])
    }

    /// Every key that starts with `prefix`, in key order, with its value.
    public func getPrefix(_ prefix: String) async throws(EtcdClientError) -> RangeResponse {
        var end = Array(prefix.utf8)
        // The range's end is the prefix with its last byte one higher (etcd's prefix rule).
        while let last = end.last, last == 0xff { end.removeLast() }
        if !end.isEmpty { end[end.count - 1] += 1 }
        return try await post("/v3/kv/range", ["key": Base64Text.encode(prefix),
                                               "range_end": Data(end.isEmpty ? [0] : end).base64EncodedString()])
    }
}
