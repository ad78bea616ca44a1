import MusterYAML

public enum DiscoverySource: Sendable, Equatable {
    /// A token on another cluster of this inventory (brought up first, with v2 enabled).
    case cluster(String)
    /// An existing etcd's v2 keys API, e.g. `http://172.19.19.122:2379`.
    case url(String)
    /// A discovery.etcd.io-style service asked `GET /new?size=N`.
    case service(String)
    /// An etcd outside the inventory, by its client URLs: v3 discovery's backend.
    case endpoints([String])
}

/// What `bootstrap: { discovery: ... }` says besides its backend and size.
public struct DiscoveryOptions: Sendable, Equatable {
    /// `protocol:`, when the inventory forces one.
    public var forcedProtocol: DiscoveryProtocol?
    /// Where a refusal of the protocol points: `protocol:`, else the discovery mapping.
    public var protocolMark: Mark
    /// `tls:` of an `endpoints:` backend: files on the controller, shipped to every member.
    public var tls: DiscoveryTLSFiles?

    public init(forcedProtocol: DiscoveryProtocol? = nil, protocolMark: Mark, tls: DiscoveryTLSFiles? = nil) {
        self.forcedProtocol = forcedProtocol
        self.protocolMark = protocolMark
        self.tls = tls
    }
}

/// The CA that signed an external v3 discovery backend's server certificate, and the client
/// certificate and key its members present to it (paths on the controller).
public struct DiscoveryTLSFiles: Sendable, Equatable {
    public var ca: String
    public var cert: String
    public var key: String
    public var mark: Mark
}

extension InventoryDecoder {
    /// `bootstrap: { discovery: ... }`: its backend, size and proxy, and `protocol:`/`tls:` in
    /// `discoveryOptions`.
    func discoveryBootstrap(_ node: Node, cluster: String,
                            discoveryOptions: inout DiscoveryOptions?) -> Bootstrap? {
        guard let discovery = MappingReader(node, context: "discovery of cluster '\(cluster)'", sink: sink) else { return nil }
        discovery.rejectUnknownKeys(["cluster", "url", "service", "endpoints", "size", "proxy", "protocol", "tls"])
        // Keys set to null (`url: ~`) name nothing, as before.
        let named = ["cluster", "url", "service", "endpoints"].filter { discovery[$0].map { !$0.isNull } ?? false }
        guard named.count == 1 else {
            sink.error(node.mark, "discovery of cluster '\(cluster)' needs exactly one of 'cluster', 'url', 'service', 'endpoints'")
            return nil
        }
        var options = DiscoveryOptions(protocolMark: node.mark)
        if let text = discovery.string("protocol") {
            if let chosen = DiscoveryProtocol(rawValue: text) {
                options.forcedProtocol = chosen
                options.protocolMark = discovery.mark("protocol")
            } else {
                sink.error(discovery.mark("protocol"), "discovery protocol '\(text)' of cluster '\(cluster)' must be v2 or v3")
            }
        }
        let source: DiscoverySource
        if named[0] == "endpoints" {
            // A value refused by the reader (a list item of the wrong kind) is reported already.
            guard let urls = discovery.stringList("endpoints") else { return nil }
            if urls.isEmpty { sink.error(discovery.mark("endpoints"), "discovery endpoints of cluster '\(cluster)' list no URL") }
            for (url, mark) in urls where !Names.isHTTPURL(url) {
                sink.error(mark, "discovery endpoint '\(url)' must be an http:// or https:// URL without spaces or quotes")
            }
            source = .endpoints(urls.map(\.0))
        } else {
            // A value refused by the reader (a list, a control character) is reported already.
            guard let text = discovery.string(named[0]) else { return nil }
            source = switch named[0] {
            case "cluster": .cluster(text)
            case "url": .url(text)
            default: .service(text)
            }
        }
        switch source {
        case .url(let url), .service(let url):
            if !Names.isHTTPURL(url) {
                sink.error(discovery.mark(named[0]), "discovery URL '\(url)' must be an http:// or https:// URL without spaces or quotes")
            }
        case .cluster, .endpoints: break
        }
        if let tls = discovery.mapping("tls", context: "discovery tls of cluster '\(cluster)'") {
            tls.rejectUnknownKeys(["ca", "cert", "key"])
            if case .endpoints = source {
                let files = ["ca", "cert", "key"].map { key -> String? in
                    guard let path = tls.string(key) else {
                        if tls[key] == nil { sink.error(tls.node.mark, "discovery tls of cluster '\(cluster)' needs '\(key)'") }
                        return nil
                    }
                    if !path.hasPrefix("/") { sink.error(tls.mark(key), "discovery tls \(key) '\(path)' must be an absolute path on the controller") }
                    return path
                }
                if let ca = files[0], let cert = files[1], let key = files[2] {
                    options.tls = DiscoveryTLSFiles(ca: ca, cert: cert, key: key, mark: tls.node.mark)
                }
            } else {
                sink.error(discovery.mark("tls"), "discovery tls of cluster '\(cluster)' is for an 'endpoints' backend: an inventory cluster's backend uses the certificates muster issues from its CA")
            }
        }
        discoveryOptions = options
        guard let size = discovery.int("size") else {
            if discovery["size"] == nil {
                sink.error(node.mark, "discovery of cluster '\(cluster)' needs a 'size'")
            }
            return nil
        }
        let proxy = discovery.string("proxy")
        if let proxy, !Names.isHTTPURL(proxy) {
            sink.error(discovery.mark("proxy"), "discovery proxy '\(proxy)' must be an http:// URL")
        }
        return .discovery(source: source, size: size, proxy: proxy)
    }
}

extension InventoryChecks {
    func checkDiscovery(_ cluster: Cluster, source: DiscoverySource, size: Int) {
        // A size smaller than `members:` matters only until the cluster has formed, which
        // the state dir knows: PlanBuilder checks it.
        if size < 1 || size > 99 {
            sink.error(cluster.bootstrapMark, "discovery size \(size) must be between 1 and 99")
        }
        // Whether the backend may keep TLS depends on the protocol, so on the members'
        // version: `check(memberVersion:)`.
        if case .cluster(let backend) = source {
            if let backendCluster = inventory.cluster(named: backend), backendCluster.clientListen == .loopback {
                sink.error(cluster.bootstrapMark, "discovery cluster '\(backend)' serves clients on 127.0.0.1 only (client_listen: loopback): the members of '\(cluster.name)' could not reach it; give '\(backend)' client_listen: address")
            }
            if backend == cluster.name {
                sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' cannot be its own discovery backend")
            } else if inventory.cluster(named: backend) == nil {
                sink.error(cluster.bootstrapMark, "discovery cluster '\(backend)' is not a cluster of this inventory")
            }
        }
    }

    func checkDiscoveryCycles() {
        for cluster in inventory.clusters {
            var seen: [String] = [cluster.name]
            var current = cluster
            while let backend = current.bootstrap.backendCluster, let next = inventory.cluster(named: backend) {
                if seen.contains(backend) {
                    if backend == cluster.name, seen.count > 1 {
                        sink.error(cluster.bootstrapMark, "clusters form a discovery cycle: \((seen + [backend]).joined(separator: " -> "))")
                    }
                    break
                }
                seen.append(backend)
                current = next
            }
        }
    }
}

extension Inventory {
    /// Each discovery cluster's protocol against its members' version and its backend:
    /// `versionOf` gives the etcd version a cluster's members run.
    func checkDiscoveryProtocols(versionOf: (Cluster) -> String, sink: DiagnosticSink) {
        for cluster in clusters {
            guard case .discovery(let source, _, _) = cluster.bootstrap else { continue }
            let options = cluster.discoveryOptions ?? DiscoveryOptions(protocolMark: cluster.bootstrapMark)
            let version = versionOf(cluster)
            switch DiscoveryProtocol.choose(memberVersion: version, forced: options.forcedProtocol) {
            case .failure(let refusal):
                sink.error(options.protocolMark, "cluster '\(cluster.name)' cannot use \(options.forcedProtocol?.rawValue ?? "") discovery: \(refusal.reason); \(refusal.wayOn)")
            case .success(.v3):
                switch source {
                case .url, .service:
                    sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v3 discovery (its members run etcd \(version)), which speaks to an etcd's v3 API, not to a v2 keys URL or a discovery service: name an inventory cluster ('cluster:') or an etcd's client URLs ('endpoints:')\(DiscoveryProtocol.choose(memberVersion: version, forced: .v2).isV2 ? ", or force 'protocol: v2'" : "")")
                case .cluster(let backend):
                    // The client certificate of the backend's CA rides with the cluster's own files.
                    if self.cluster(named: backend)?.tls == true, !cluster.tls {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' discovers through '\(backend)', which has TLS on: its members present a client certificate of '\(backend)''s CA, which muster ships with their own; set 'tls: true' on '\(cluster.name)' too")
                    }
                case .endpoints(let urls):
                    if urls.contains(where: { $0.hasPrefix("https://") }), options.tls == nil {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' discovers through https endpoints: give 'tls: { ca, cert, key }' (the backend's CA, and a client certificate it accepts)")
                    } else if options.tls != nil, !cluster.tls {
                        sink.error(options.tls?.mark ?? options.protocolMark, "cluster '\(cluster.name)' ships discovery tls files with its own certificates: set 'tls: true' on '\(cluster.name)' too")
                    }
                }
            case .success(.v2):
                switch source {
                case .endpoints:
                    sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v2 discovery (its members run etcd \(version)), but 'endpoints' names a v3 discovery backend: v2 discovery needs 'cluster', 'url' or 'service'")
                case .cluster(let backend):
                    guard let backendCluster = self.cluster(named: backend) else { break }
                    if backendCluster.tls {
                        sink.error(options.protocolMark, "discovery cluster '\(backend)' has TLS on, but etcd's v2 discovery client trusts only the system's roots and presents no client certificate: set 'tls: false' on '\(backend)' (cluster '\(cluster.name)' itself may keep TLS)")
                    }
                    let backendVersion = versionOf(backendCluster)
                    if !DiscoveryProtocol.servesV2Keys(version: backendVersion) {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v2 discovery through cluster '\(backend)', but '\(backend)' runs etcd \(backendVersion), which serves no v2 keys API (3.6 removed enable-v2): run '\(backend)' on 3.5, or '\(cluster.name)' on 3.6 or later with v3 discovery")
                    }
                case .url, .service:
                    break
                }
            }
        }
    }
}

private extension Result where Success == DiscoveryProtocol {
    var isV2: Bool { if case .success(.v2) = self { return true }; return false }
}
