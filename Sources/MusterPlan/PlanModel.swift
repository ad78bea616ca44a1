import MusterInventory

/// Where a member's files live on its host.
public struct MemberPaths: Sendable, Codable, Equatable {
    public var binary: String
    public var etcdctl: String
    public var configDir: String
    public var config: String
    public var pkiDir: String
    public var data: String
    public var unit: String
    public var startScript: String
    public var runDir: String
    public var pidfile: String
    public var logDir: String
    public var log: String

    // The certificate files' names, owned here: the renderer points etcd at them and the
    // deploy layer writes them.
    public var caCert: String { pkiDir + "/ca.crt" }
    /// The only CA the peer port trusts (the cluster CA again for clusters made before muster
    /// had a peer CA).
    public var peerCACert: String { pkiDir + "/peer-ca.crt" }
    public var serverCert: String { pkiDir + "/server.crt" }
    public var serverKey: String { pkiDir + "/server.key" }
    /// etcd 3.5+: the certificate the member's JSON gateway presents to its own client port, and
    /// what that port trusts (the cluster CA and this gateway certificate).
    public var gatewayCert: String { pkiDir + "/gateway.crt" }
    public var gatewayKey: String { pkiDir + "/gateway.key" }
    public var clientPortTrust: String { pkiDir + "/client-port-trust.crt" }
    public var peerCert: String { pkiDir + "/peer.crt" }
    public var peerKey: String { pkiDir + "/peer.key" }
    /// v3 discovery with TLS: the backend's CA and the client certificate the member presents to it.
    public var discoveryCACert: String { pkiDir + "/discovery-ca.crt" }
    public var discoveryCert: String { pkiDir + "/discovery-client.crt" }
    public var discoveryKey: String { pkiDir + "/discovery-client.key" }
    /// Written beside the config when muster first starts a member: `CLUSTER NAME ID`.
    public var marker: String { configDir + "/member.id" }
}

public struct MemberPlan: Sendable {
    public var cluster: String
    public var host: String
    public var name: String
    public var address: String
    public var peerURL: String
    public var clientURLs: [String]
    public var listenPeerURLs: [String]
    public var listenClientURLs: [String]
    /// The URL muster itself queries for this member (first advertised client URL, or loopback).
    public var endpoint: String
    /// `nil` while the discovery URL is not known yet (a service token asked for at `up`).
    public var memberID: UInt64?
    public var paths: MemberPaths
    /// `initial-cluster` of this member's conf.yml, where it has one (static founders, and every
    /// member that joins a formed cluster).
    public var initialCluster: String? = nil
    /// Set for a member that joins (or joined) a formed cluster as a learner.
    public var join: JoinPlan? = nil
    /// The peer URL the cluster knows this member by, when the inventory changed it (its
    /// host's address or fqdn): `up` updates it in place (`member update`) and restarts it.
    public var formerPeerURL: String? = nil
}

/// A member to remove from a formed cluster: etcd's ID and peer URL from the record, and where
/// it runs when its host is still in the inventory (so that it can be stopped and disabled).
public struct RemovalPlan: Sendable {
    public var name: String
    public var id: UInt64
    public var peerURL: String
    /// The member as planned on its host, when the inventory still has that host.
    public var member: MemberPlan?
    /// Gone already (its host unreachable, or the member not running): removed before any
    /// newcomer joins, not after (`PlanFacts.departed`).
    public var beforeJoins = false

    public init(name: String, id: UInt64, peerURL: String, member: MemberPlan?) {
        self.name = name
        self.id = id
        self.peerURL = peerURL
        self.member = member
    }
}

/// How a member joins a formed cluster: `initial-cluster-state: existing` with every member of
/// the cluster (itself included) and no bootstrap keys.
public struct JoinPlan: Sendable, Equatable {
    public var initialCluster: String
    /// Not in the cluster yet: `up` adds it as a learner, starts it and promotes it.
    public var isNew: Bool
}

public struct ClusterPlan: Sendable {
    public var name: String
    public var bootstrap: BootstrapPlan
    public var tls: Bool
    public var memberVersion: String
    public var enableV2: Bool
    public var clusterID: UInt64?
    public var members: [MemberPlan]
    /// Clusters that must be up before this one (its discovery backend).
    public var dependsOn: [String]
    /// Members the cluster has (as recorded) that the inventory no longer lists.
    public var removals: [RemovalPlan] = []
    /// The `initial-cluster-token` of the restore that founded the cluster last (recorded, or a
    /// restore under way): its founders' conf.yml names it and their `initial-cluster`, not the
    /// bootstrap mode's keys.
    public var restoreToken: String? = nil
    /// Another cluster discovers through this one's v2 keys API, whose client presents no
    /// certificate: the client port then asks for none.
    public var servesV2Discovery = false
    /// How many unpromoted learners etcd takes at once (`EtcdVersionProfile.learnerLimit`).
    public var learnerLimit = 1

    public var mode: String { bootstrap.modeName }
    /// `initial-cluster-token`: discovery clusters take theirs from the discovery URL.
    public var initialClusterToken: String? { bootstrap.initialClusterToken }
    /// Every host the cluster needs: its members' and its DNS server's.
    public var hosts: [String] {
        (members.map(\.host) + (dns.map { [$0.serverHost] } ?? []) + removals.compactMap(\.member?.host)).uniqued()
    }
    public func member(named name: String) -> MemberPlan? { members.first { $0.name == name } }
}

/// Where a rendered file goes, without its contents: what `plan.json` lists.
public struct FileEntry: Sendable, Equatable {
    public var host: String
    public var path: String
    public var mode: Int

    public init(host: String, path: String, mode: Int) {
        self.host = host
        self.path = path
        self.mode = mode
    }
}

/// One file muster puts on a host.
public struct RenderedFile: Sendable, Codable, Equatable {
    public var host: String
    public var path: String
    public var contents: String
    public var mode: Int
    /// `user:group` to own the file (private keys the etcd user must read); root's otherwise.
    public var owner: String?

    public init(host: String, path: String, contents: String, mode: Int, owner: String? = nil) {
        self.host = host
        self.path = path
        self.contents = contents
        self.mode = mode
        self.owner = owner
    }

    public var entry: FileEntry { FileEntry(host: host, path: path, mode: mode) }
}

/// Everything muster will do, decided before any host is contacted.
public struct Plan: Sendable {
    public var inventory: String
    public var clusters: [ClusterPlan]
    public var files: [RenderedFile]

    public init(inventory: String, clusters: [ClusterPlan], files: [RenderedFile]) {
        self.inventory = inventory
        self.clusters = clusters
        self.files = files
    }

    public func cluster(named name: String) -> ClusterPlan? { clusters.first { $0.name == name } }
}
