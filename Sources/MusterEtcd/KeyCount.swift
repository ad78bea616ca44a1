import Foundation

extension EtcdClient {
    /// How many keys the member holds (`count_only` over the whole key space), and the revision
    /// its answer was read at.
    public func countKeys() async throws(EtcdClientError) -> (count: Int64, revision: Int64) {
        let all: RangeResponse = try await post("/v3/kv/range", [
            "key": Base64Text.encode("\u{0}"), "range_end": Base64Text.encode("\u{0}"), "count_only": true, "serializable": true,
        ])
        return (all.count, all.header.revision)
    }
}
