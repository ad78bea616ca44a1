import MusterYAML

/// How muster reaches a host over SSH. Inventory-wide defaults merged with a host's own.
public struct SSHSettings: Sendable, Equatable {
    public var user: String = "root"
    public var port: Int = 22
    /// Private key file; `nil` means ssh-agent only.
    public var identity: String?
    public var knownHosts: String = "~/.ssh/known_hosts"
    public var connectTimeout: Int = 10
}

public struct Host: Sendable {
    public var name: String
    public var address: String
    public var fqdn: String?
    public var ssh: SSHSettings
    public var mark: Mark
    /// This host's own `supervisor:`, which wins over `member.supervisor`.
    public var supervisor: SupervisorChoice? = nil
}

/// Who keeps members (and muster's dnsmasq) running on a host: `auto` picks systemd where it is
/// PID 1 and a detached process elsewhere; the other two force one.
public enum SupervisorChoice: String, Sendable, CaseIterable {
    case auto, systemd, process
}

public struct MemberSettings: Sendable {
    /// etcd on the controller, shipped to every host.
    public var binary: String = "/usr/bin/etcd"
    /// etcdctl to ship beside it, only when named: operators reach the cluster from the
    /// controller (`muster verify`, `muster env`), and an etcdctl nobody asked for would be 40%
    /// of the bytes a bring-up moves.
    public var etcdctl: String?
    /// Overrides asking the binary (`etcd --version`), for rendering where it is absent.
    public var version: String?
    public var mark: Mark
    /// Every host's supervisor unless the host names its own.
    public var supervisor: SupervisorChoice = .auto
}

public struct DNSSettings: Sendable {
    public var server: String
    public var domain: String
    /// Put the server first in members' resolv.conf (the old file is kept beside it).
    public var configureResolvers: Bool = false
    public var mark: Mark
}

/// Where things live on a host; each path gets the cluster's name appended.
public struct HostPaths: Sendable, Equatable {
    public var install = "/opt/muster/bin"
    public var config = "/etc/etcd"
    public var data = "/var/lib/etcd"
    public var run = "/run/etcd"
    public var log = "/var/log/etcd"
    public var dnsmasq = "/etc/dnsmasq.d"
    public var systemd = "/etc/systemd/system"
    public init() {}
}

/// Which addresses a member serves clients on.
public enum ClientListen: String, Sendable {
    /// Its address and 127.0.0.1 (the walkthrough's layout).
    case address
    /// 127.0.0.1 only: reachable from the controller through an SSH tunnel (`verify --via-ssh`).
    case loopback
}

/// One extra etcd config key the inventory sets, with its YAML type kept.
public struct EtcdOption: Sendable, Equatable {
    public var key: String
    public var value: ScalarType
}

public struct Cluster: Sendable {
    public var name: String
    public var members: [String]
    public var clientPort = 2379
    public var peerPort = 2380
    public var token: String
    public var tls = true
    public var clientListen = ClientListen.address
    public var etcdOptions: [EtcdOption] = []
    /// Where each of `etcdOptions` is set, for refusals that need the member version.
    public var etcdOptionMarks: [String: Mark] = [:]
    /// `clusters.NAME.member`: this cluster's own binary and version, over the inventory's.
    public var member: MemberSettings?
    public var bootstrap = Bootstrap.staticCluster
    /// Set with `bootstrap: { discovery: ... }`.
    public var discoveryOptions: DiscoveryOptions? = nil
    public var mark: Mark
    public var bootstrapMark: Mark
}

/// A checked inventory: every reference resolves, every value is in range.
public struct Inventory: Sendable {
    public var file: String
    public var member: MemberSettings
    public var hosts: [Host] { didSet { hostIndex = Self.positions(of: hosts.map(\.name)) } }
    public var dns: DNSSettings?
    public var clusters: [Cluster] { didSet { clusterIndex = Self.positions(of: clusters.map(\.name)) } }
    public var paths: HostPaths
    /// Positions by name, the first of a name winning: planning looks a host up for every
    /// member, and at 1,500 members a linear search (copying each `Host` it passes) was most of
    /// a render's CPU time.
    private var hostIndex: [String: Int]
    private var clusterIndex: [String: Int]

    init(file: String, member: MemberSettings, hosts: [Host], dns: DNSSettings?, clusters: [Cluster], paths: HostPaths) {
        self.file = file
        self.member = member
        self.hosts = hosts
        self.dns = dns
        self.clusters = clusters
        self.paths = paths
        hostIndex = Self.positions(of: hosts.map(\.name))
        clusterIndex = Self.positions(of: clusters.map(\.name))
    }

    private static func positions(of names: [String]) -> [String: Int] {
        Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func host(named name: String) -> Host? { hostIndex[name].map { hosts[$0] } }

    /// The member binary `cluster` runs: its own `member:`, else the inventory's.
    public func memberSettings(of cluster: String) -> MemberSettings {
        self.cluster(named: cluster)?.member ?? member
    }
    public func cluster(named name: String) -> Cluster? { clusterIndex[name].map { clusters[$0] } }

    /// The supervisor asked for on `host`: its own setting, else `member.supervisor`.
    public func supervisorChoice(on host: String) -> SupervisorChoice {
        self.host(named: host)?.supervisor ?? member.supervisor
    }

    /// Clusters ordered so that a discovery backend comes before the clusters that use it.
    public var clustersInBringUpOrder: [Cluster] {
        var ordered: [Cluster] = []
        var placed = Set<String>()
        func place(_ cluster: Cluster, depth: Int) {
            guard !placed.contains(cluster.name), depth < clusters.count + 1 else { return }
            if let backend = cluster.bootstrap.backendCluster, let dependency = self.cluster(named: backend) {
                place(dependency, depth: depth + 1)
            }
            placed.insert(cluster.name)
            ordered.append(cluster)
        }
        clusters.forEach { place($0, depth: 0) }
        return ordered
    }
}
