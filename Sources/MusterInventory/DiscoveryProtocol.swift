/// Which of etcd's two discovery protocols a cluster's members speak. v2 (`discovery: URL`, a
/// backend's v2 keys API) is what 3.4 and 3.5 have; 3.6 added v3 (`discovery-config`: a token
/// and a backend etcd's gRPC endpoints) and deprecated v2; 3.7 removed v2 (CHANGELOG-3.6.md,
/// CHANGELOG-3.7.md).
public enum DiscoveryProtocol: String, Sendable, CaseIterable, Equatable {
    case v2, v3

    /// The one place the choice is made, from the members' line (`EtcdVersionProfile`): the
    /// line's preferred protocol (v3 from 3.6, v2 before); `forced` (`protocol:`) wins where the
    /// members speak it. Returns the protocol, or why the members cannot speak the forced one.
    /// A version of no known line chooses v2 here: the version check refuses it at its place.
    public static func choose(memberVersion: String, forced: DiscoveryProtocol?) -> Result<DiscoveryProtocol, DiscoveryProtocolRefusal> {
        guard let profile = try? EtcdVersionProfile(memberVersion) else { return .success(forced ?? .v2) }
        switch forced {
        case nil: return .success(profile.preferredDiscoveryProtocol)
        case .v2?:
            return profile.speaks(.v2) ? .success(.v2) : .failure(DiscoveryProtocolRefusal(
                reason: "etcd \(memberVersion) has no v2 discovery (3.7 removed --discovery, and ignores the key in a config file)",
                wayOn: "use protocol: v3 (or leave protocol out)"))
        case .v3?:
            return profile.speaks(.v3) ? .success(.v3) : .failure(DiscoveryProtocolRefusal(
                reason: "etcd \(memberVersion) has no v3 discovery (etcd added it in 3.6)",
                wayOn: "use protocol: v2 (or leave protocol out), or members on 3.6 or later"))
        }
    }

    /// Whether an etcd of `version` serves the v2 keys API a v2 discovery backend needs
    /// (3.6 removed `enable-v2`).
    public static func servesV2Keys(version: String) -> Bool {
        (try? EtcdVersionProfile(version))?.servesV2API ?? true
    }
}

public struct DiscoveryProtocolRefusal: Error, Sendable, Equatable {
    public var reason: String
    public var wayOn: String
}
