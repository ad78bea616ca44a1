/// Which of etcd's two discovery protocols a cluster's members speak. v2 (`discovery: URL`, a
/// backend's v2 keys API) is what 3.4 and 3.5 have; 3.6 added v3 (`discovery-config`: a token
/// and a backend etcd's gRPC endpoints) and deprecated v2; 3.7 removed v2 (CHANGELOG-3.6.md,
/// CHANGELOG-3.7.md).
public enum DiscoveryProtocol: String, Sendable, CaseIterable, Equatable {
    case v2, v3

    /// The one place the choice is made (a version profile may answer it later): v3 for members
    /// on 3.6 or later, v2 before; `forced` (`protocol:`) wins where the members speak it.
    /// Returns the protocol, or why the members cannot speak the forced one.
    public static func choose(memberVersion: String, forced: DiscoveryProtocol?) -> Result<DiscoveryProtocol, DiscoveryProtocolRefusal> {
        let parts = memberVersion.split(separator: ".").compactMap { Int($0) }
        let minor = parts.count >= 2 ? (parts[0], parts[1]) : (3, 4)
        let hasV3 = minor >= (3, 6), hasV2 = minor < (3, 7)
        switch forced {
        case nil: return .success(hasV3 ? .v3 : .v2)
        case .v2?:
            return hasV2 ? .success(.v2) : .failure(DiscoveryProtocolRefusal(
                reason: "etcd \(memberVersion) has no v2 discovery (3.7 removed --discovery, and ignores the key in a config file)",
                wayOn: "use protocol: v3 (or leave protocol out)"))
        case .v3?:
            return hasV3 ? .success(.v3) : .failure(DiscoveryProtocolRefusal(
                reason: "etcd \(memberVersion) has no v3 discovery (etcd added it in 3.6)",
                wayOn: "use protocol: v2 (or leave protocol out), or members on 3.6 or later"))
        }
    }

    /// Whether an etcd of `version` serves the v2 keys API a v2 discovery backend needs
    /// (3.6 removed `enable-v2`).
    public static func servesV2Keys(version: String) -> Bool {
        let parts = version.split(separator: ".").compactMap { Int($0) }
        return parts.count < 2 || (parts[0], parts[1]) < (3, 6)
    }
}

public struct DiscoveryProtocolRefusal: Error, Sendable, Equatable {
    public var reason: String
    public var wayOn: String
}
