import Foundation

/// Maintenance through the JSON gateway (what `etcdctl defrag` and `etcdctl alarm` do).
extension EtcdClient {
    /// `POST /v3/maintenance/defragment`: this member only. The member answers nothing else while
    /// it rewrites its database, so callers give it a long timeout and one member at a time.
    public func defragment() async throws(EtcdClientError) {
        struct Empty: Decodable {}
        let _: Empty = try await post("/v3/maintenance/defragment", [:])
    }

    /// `POST /v3/kv/compaction`: drops every key revision older than `revision` (physically,
    /// so a defragment afterwards gets the space back).
    public func compact(revision: Int64) async throws(EtcdClientError) {
        struct Empty: Decodable {}
        let _: Empty = try await post("/v3/kv/compaction", ["revision": String(revision), "physical": true])
    }

    public enum AlarmAction: String, Sendable { case activate = "ACTIVATE", deactivate = "DEACTIVATE" }

    /// Raises or clears `alarm` (`NOSPACE`, `CORRUPT`) for one member: `deactivate` is
    /// `etcdctl alarm disarm` for that member; `activate` is what etcd itself does when a
    /// member's quota is exceeded, which tests use to raise one on demand.
    public func alarm(_ action: AlarmAction, _ alarm: String, memberID: UInt64) async throws(EtcdClientError) {
        struct Empty: Decodable {}
        let _: Empty = try await post("/v3/maintenance/alarm",
                                      ["action": action.rawValue, "alarm": alarm, "memberID": String(memberID)])
    }
}
