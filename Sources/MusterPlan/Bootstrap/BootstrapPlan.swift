import MusterInventory

/// How a cluster forms, with the data each way needs. Each mode's planning (its token, its
/// founding rule, its plan, its conf.yml keys) lives in a file of its own beside this one; the
/// switches in this file are MusterPlan's only ones over the mode, so the compiler points at
/// each of them when a mode is added.
public enum BootstrapPlan: Sendable {
    /// `initial-cluster` lists every member; `initial-cluster-token` keeps clusters apart.
    case staticCluster(token: String)
    /// Members find each other through a discovery URL (an etcd's v2 keys or a service).
    case discovery(DiscoveryPlan)
    /// Members register under a token in a backend etcd's v3 keys (etcd 3.6+).
    case discoveryV3(DiscoveryV3Plan)
    /// Members find each other by SRV records that muster's dnsmasq serves.
    case dns(DNSPlan, token: String)

    /// The name `render` prints and `plan.json` carries.
    public var modeName: String {
        switch self {
        case .staticCluster: return "static"
        case .discovery: return "discovery"
        case .discoveryV3: return "discovery-v3"
        case .dns: return "dns"
        }
    }

    /// `initial-cluster-token`: discovery clusters take theirs from the discovery URL.
    public var initialClusterToken: String? {
        switch self {
        case .staticCluster(let token), .dns(_, let token): return token
        case .discovery, .discoveryV3: return nil
        }
    }

    /// The mode's keys in a founding member's conf.yml (its `initial-cluster` is the planner's).
    func addFoundingKeys(to context: inout TemplateContext, member: MemberPlan) {
        switch self {
        case .staticCluster(let token): StaticPlanning.addFoundingKeys(token: token, to: &context)
        case .discovery(let discovery): discovery.addFoundingKeys(to: &context)
        case .discoveryV3(let discovery): discovery.addFoundingKeys(to: &context, member: member)
        case .dns(let dns, let token): dns.addFoundingKeys(token: token, to: &context)
        }
    }
}

/// What the planner asks of one cluster's bootstrap mode, in the order it plans the cluster:
/// the mode's facts first (tokens, backends), its plan once the members have their URLs.
protocol ModePlanning {
    /// The token member IDs derive from; nil while unknown (a discovery service's URL before
    /// `up` asked for it).
    var idToken: String? { get }
    /// The founders list every member in `initial-cluster` rather than finding each other.
    var foundsStatically: Bool { get }
    /// A member whose host has no fqdn advertises `HOST.DOMAIN` when this is set, else its address.
    var advertisedDomain: String? { get }
    /// Clusters that must be up before this one.
    var dependsOn: [String] { get }
    func plan(members: [MemberPlan]) throws -> BootstrapPlan
}

extension ModePlanning {
    var advertisedDomain: String? { nil }
    var dependsOn: [String] { [] }
}

extension Planner {
    /// The inventory's mode for `cluster`, as the planner uses it.
    func modePlanning(_ cluster: Cluster, backends: [String: ClusterPlan]) throws -> any ModePlanning {
        switch cluster.bootstrap {
        case .staticCluster:
            return StaticPlanning(token: cluster.token)
        case .discovery(let source, let size, let proxy):
            return try DiscoveryPlanning(cluster, source: source, size: size, proxy: proxy, backends: backends, planner: self)
        case .dns(let domain, let serviceName):
            return DNSPlanning(cluster: cluster, domain: domain, serviceName: serviceName, planner: self)
        }
    }
}
