import MusterBasics

/// etcd's deterministic member and cluster IDs, computed exactly as etcd's `membership` package
/// does (`computeMemberId` in member.go, `genID` in cluster.go), so the planner can predict them
/// and `muster verify` can compare them with what a running cluster reports.
public enum EtcdIDs {
    /// SHA-1 over the member's peer URLs, sorted and joined with no separator, followed by the
    /// cluster token (`initial-cluster-token`); the first 8 bytes of the digest, big-endian.
    public static func memberID(peerURLs: [String], token: String) -> UInt64 {
        var bytes = Array(peerURLs.sorted().joined().utf8)
        bytes.append(contentsOf: token.utf8)
        return Digest.sha1Prefix64(bytes)
    }

    /// SHA-1 over the member IDs sorted ascending, each as 8 big-endian bytes; the first 8 bytes
    /// of the digest, big-endian.
    public static func clusterID(memberIDs: [UInt64]) -> UInt64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(memberIDs.count * 8)
        for id in memberIDs.sorted() {
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: id >> UInt64(shift)))
            }
        }
        return Digest.sha1Prefix64(bytes)
    }

    /// An ID as etcdctl prints it: lowercase hex, no padding (`170c2709464bed8b`).
    public static func hex(_ id: UInt64) -> String {
        String(id, radix: 16)
    }

    /// Parses an ID printed in hex (as etcdctl and `hex(_:)` print it).
    public static func parseHex(_ text: String) -> UInt64? {
        UInt64(text, radix: 16)
    }
}
