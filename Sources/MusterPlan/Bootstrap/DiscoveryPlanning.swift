import MusterBasics
import MusterInventory

public struct DiscoveryPlan: Sendable, Codable {
    public enum Backend: String, Sendable, Codable { case cluster, url, service }
    public var backend: Backend
    /// The backend cluster's name for `.cluster`.
    public var backendCluster: String?
    public var token: String
    /// What members get as `discovery:`; a marked placeholder until a service has answered.
    public var url: String
    public var isPlaceholder: Bool
    public var size: Int
    public var proxy: String?
    /// Where `up` asks for a token (`GET SERVICE/new?size=N`) for a service backend.
    public var serviceURL: String?
    /// The key `up` sets for an etcd backend: `PUT URL/_config/size value=N`.
    public var sizeKeyURL: String?

    func addFoundingKeys(to context: inout TemplateContext) {
        context["discovery"] = .text(url)
        if let proxy { context["discoveryProxy"] = .text(proxy) }
    }
}

extension ClusterPlan {
    public var discovery: DiscoveryPlan? {
        if case .discovery(let plan) = bootstrap { return plan }
        return nil
    }
}

/// The inventory's `bootstrap: { discovery: ... }`: v2 discovery (a URL under a token of an
/// etcd's v2 keys, or a service's) or v3 (`DiscoveryV3Planning.swift`), as the members' version
/// and `protocol:` choose.
struct DiscoveryPlanning: ModePlanning {
    let discovery: DiscoveryPlan?
    let discoveryV3: DiscoveryV3Plan?

    init(_ cluster: Cluster, source: DiscoverySource, size: Int, proxy: String?,
         backends: [String: ClusterPlan], planner: Planner) throws {
        let protocolChoice = try planner.discoveryProtocol(cluster)
        discovery = protocolChoice == .v2 ? try planner.discoveryPlan(cluster, source: source, size: size, proxy: proxy, backends: backends) : nil
        discoveryV3 = protocolChoice == .v3 ? try planner.discoveryV3Plan(cluster, source: source, size: size, backends: backends) : nil
    }

    // v3 discovery founds under the bare token (etcd's PeerURLsMapAndToken), v2 under the URL.
    var idToken: String? { discoveryV3?.token ?? discovery.flatMap { $0.isPlaceholder ? nil : $0.url } }
    var foundsStatically: Bool { false }
    var dependsOn: [String] { (discovery?.backendCluster ?? discoveryV3?.backendCluster).map { [$0] } ?? [] }

    func plan(members: [MemberPlan]) throws -> BootstrapPlan {
        discoveryV3.map(BootstrapPlan.discoveryV3) ?? .discovery(discovery!)
    }
}

extension Planner {
    /// Clusters that are another cluster's v2 discovery backend: only those need their v2 keys
    /// API on and a client port without certificates.
    static func v2Backends(of inventory: Inventory, facts: PlanFacts) -> Set<String> {
        Set(inventory.clusters.compactMap { cluster in
            guard case .discovery(.cluster(let backend), _, _) = cluster.bootstrap,
                  case .success(.v2) = DiscoveryProtocol.choose(memberVersion: facts.version(of: cluster.name),
                                                                forced: cluster.discoveryOptions?.forcedProtocol)
            else { return nil }
            return backend
        })
    }

    /// The protocol of a discovery cluster. The inventory check has refused what its members
    /// cannot speak already.
    fileprivate func discoveryProtocol(_ cluster: Cluster) throws -> DiscoveryProtocol {
        switch DiscoveryProtocol.choose(memberVersion: facts.version(of: cluster.name), forced: cluster.discoveryOptions?.forcedProtocol) {
        case .success(let chosen): return chosen
        case .failure(let refusal):
            throw PlanError(description: "cluster '\(cluster.name)': \(refusal.reason); \(refusal.wayOn)")
        }
    }

    fileprivate func discoveryPlan(_ cluster: Cluster, source: DiscoverySource, size: Int, proxy: String?,
                                   backends: [String: ClusterPlan]) throws -> DiscoveryPlan {
        let stored = facts.discoveryTokens[cluster.name]
        switch source {
        case .cluster(let backendName):
            guard let backend = backends[backendName], let first = backend.members.first else {
                throw PlanError(description: "discovery backend '\(backendName)' of cluster '\(cluster.name)' has no members")
            }
            guard let token = stored?.token else {
                throw PlanError(description: "no discovery token recorded for cluster '\(cluster.name)'")
            }
            // etcd's discovery client speaks plain v2 keys to the backend's advertised client URL.
            let base = first.clientURLs[0] + "/v2/keys/discovery/" + token
            return DiscoveryPlan(backend: .cluster, backendCluster: backendName, token: token, url: base,
                                 isPlaceholder: false, size: size, proxy: proxy, serviceURL: nil,
                                 sizeKeyURL: base + "/_config/size")
        case .url(let url):
            guard let token = stored?.token else {
                throw PlanError(description: "no discovery token recorded for cluster '\(cluster.name)'")
            }
            let base = URLParts.trimmingSlashes(url) + "/v2/keys/discovery/" + token
            return DiscoveryPlan(backend: .url, backendCluster: nil, token: token, url: base,
                                 isPlaceholder: false, size: size, proxy: proxy, serviceURL: nil,
                                 sizeKeyURL: base + "/_config/size")
        case .endpoints:
            throw PlanError(description: "cluster '\(cluster.name)': 'endpoints' is a v3 discovery backend")
        case .service(let service):
            if let answered = stored?.serviceURL {
                return DiscoveryPlan(backend: .service, backendCluster: nil,
                                     token: String(answered.split(separator: "/").last ?? ""),
                                     url: answered, isPlaceholder: false, size: size, proxy: proxy,
                                     serviceURL: URLParts.trimmingSlashes(service), sizeKeyURL: nil)
            }
            return DiscoveryPlan(backend: .service, backendCluster: nil, token: Self.placeholderMarker,
                                 url: URLParts.trimmingSlashes(service) + "/\(Self.placeholderMarker)-asked-of-the-service-at-up",
                                 isPlaceholder: true, size: size, proxy: proxy,
                                 serviceURL: URLParts.trimmingSlashes(service), sizeKeyURL: nil)
        }
    }
}
