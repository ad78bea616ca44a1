import MusterYAML

/// How the inventory says a cluster forms. Each mode's parsing and checks live in a file of its
/// own beside this one (`DiscoveryInventory.swift`, `DNSInventory.swift`); the switches here
/// are MusterInventory's only ones over the mode, so the compiler points at each of them when a
/// mode is added.
public enum Bootstrap: Sendable, Equatable {
    case staticCluster
    case discovery(source: DiscoverySource, size: Int, proxy: String?)
    case dns(domain: String, serviceName: String)

    public var modeName: String {
        switch self {
        case .staticCluster: return "static"
        case .discovery: return "discovery"
        case .dns: return "dns"
        }
    }

    /// The inventory cluster that must be up before this one (its discovery backend).
    public var backendCluster: String? {
        switch self {
        case .staticCluster, .dns:
            return nil
        case .discovery(let source, _, _):
            switch source {
            case .cluster(let backend): return backend
            case .url, .service, .endpoints: return nil
            }
        }
    }

    /// How many members form the cluster, when the mode waits for a count of them rather than
    /// for those `initial-cluster` names (discovery's size).
    public var formationSize: Int? {
        switch self {
        case .staticCluster, .dns: return nil
        case .discovery(_, let size, _): return size
        }
    }

    /// Whether muster makes this cluster's token itself, before planning (a discovery service
    /// hands its own out at `up`).
    public var tokenMadeByMuster: Bool {
        switch self {
        case .staticCluster, .dns:
            return false
        case .discovery(let source, _, _):
            switch source {
            case .cluster, .url, .endpoints: return true
            case .service: return false
            }
        }
    }
}

extension InventoryDecoder {
    /// `bootstrap:` of a cluster: `static`, or a mapping naming one mode.
    func bootstrap(_ node: Node, cluster: String, defaultDNSDomain: String?,
                   discoveryOptions: inout DiscoveryOptions?) -> Bootstrap? {
        if let text = node.scalarText {
            if text == "static" { return .staticCluster }
            sink.error(node.mark, "bootstrap of cluster '\(cluster)' must be 'static', { discovery: ... } or { dns: ... }, found '\(text)'")
            return nil
        }
        guard let reader = MappingReader(node, context: "bootstrap of cluster '\(cluster)'", sink: sink) else { return nil }
        reader.rejectUnknownKeys(["static", "discovery", "dns"])
        guard reader.keysInOrder.count == 1, let mode = reader.keysInOrder.first else {
            sink.error(node.mark, "bootstrap of cluster '\(cluster)' must name exactly one of static, discovery, dns")
            return nil
        }
        switch mode.name {
        case "static":
            return .staticCluster
        case "discovery":
            return discoveryBootstrap(mode.value, cluster: cluster, discoveryOptions: &discoveryOptions)
        case "dns":
            return dnsBootstrap(mode.value, cluster: cluster, defaultDNSDomain: defaultDNSDomain)
        default:
            return nil
        }
    }
}

extension InventoryChecks {
    /// The mode's own checks, once every value has its type.
    func checkBootstrap(_ cluster: Cluster) {
        switch cluster.bootstrap {
        case .staticCluster:
            break
        case .discovery(let source, let size, _):
            checkDiscovery(cluster, source: source, size: size)
        case .dns(let domain, _):
            checkDNSBootstrap(cluster, domain: domain)
        }
    }
}

extension Inventory {
    /// The mode's checks that need the members' version (discovery's protocol is checked over
    /// every cluster at once: `checkDiscoveryProtocols`).
    func checkBootstrap(_ cluster: Cluster, profile: EtcdVersionProfile, version: String, sink: DiagnosticSink) {
        switch cluster.bootstrap {
        case .staticCluster, .discovery:
            break
        case .dns:
            checkDNSBootstrap(cluster, profile: profile, version: version, sink: sink)
        }
    }
}
