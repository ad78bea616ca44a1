/// Member and cluster IDs exactly as etcd derives them (etcd `server/etcdserver/api/membership`).
public enum EtcdIDs {
    /// SHA-1 over the sorted peer URLs concatenated, then the cluster token; first 8 bytes.
    /// In discovery mode etcd uses the whole discovery URL as the token.
    public static func memberID(peerURLs: [String], token: String) -> UInt64 {
        let bytes = Array((peerURLs.sorted().joined() + token).utf8)
        return Digest.sha1Prefix64(bytes)
    }

    /// SHA-1 over the sorted member IDs, each 8 bytes big-endian; first 8 bytes.
    public static func clusterID(memberIDs: [UInt64]) -> UInt64 {
        var bytes: [UInt8] = []
        for id in memberIDs.sorted() {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((id >> UInt64(shift)) & 0xff)) }
        }
        return Digest.sha1Prefix64(bytes)
    }

    /// The form etcdctl prints: lowercase hex without leading zeros.
    public static func hex(_ id: UInt64) -> String { String(id, radix: 16) }
}
