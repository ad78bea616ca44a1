import MusterBasics

// Member and cluster IDs are derived in MusterBasics (`EtcdIDs.memberID(peerURLs:token:)`,
// `EtcdIDs.clusterID(memberIDs:)`, `EtcdIDs.hex`), where the planner can reach them too: MusterPlan
// does not depend on MusterEtcd. This module checks them against real clusters (MusterEtcdTests)
// and adds the reverse of `hex`.
extension EtcdIDs {
    /// Parses an ID printed in hex, as etcdctl and `hex(_:)` print it.
    public static func parseHex(_ text: String) -> UInt64? {
        UInt64(text, radix: 16)
    }
}
