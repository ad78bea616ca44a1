import MusterBasics
import MusterInventory

/// etcd's v3 discovery (3.6+ members): each member registers under a token in a backend etcd,
/// through its v3 API. The layout is etcd's own (server/etcdserver/api/v3discovery/discovery.go,
/// v3.6.14 and v3.7.1 alike): `/_etcd/registry/TOKEN/_config/size` holds the size in decimal,
/// written beforehand; each member puts `/_etcd/registry/TOKEN/members/ID` (its ID in lowercase
/// hex, unpadded) = `NAME=PEERURLS`; the first `size` by create revision form the cluster.
public struct DiscoveryV3Plan: Sendable, Codable {
    /// The inventory cluster that serves the registry; `nil` for an `endpoints:` backend.
    public var backendCluster: String?
    public var token: String
    /// The backend's client URLs, as the members dial them (and muster too).
    public var endpoints: [String]
    public var size: Int
    /// The backend speaks TLS (https endpoints).
    public var tls: Bool
    /// Members present a client certificate and check the backend's against its CA (files
    /// muster ships: `MemberPaths.discoveryCert`, ...); without it, the system's roots.
    public var clientCertificate: Bool

    public init(backendCluster: String?, token: String, endpoints: [String], size: Int, tls: Bool, clientCertificate: Bool) {
        self.backendCluster = backendCluster
        self.token = token
        self.endpoints = endpoints
        self.size = size
        self.tls = tls
        self.clientCertificate = clientCertificate
    }

    /// etcd's `discoveryPrefix` joined with the token: every key of the token is under it.
    public var registryPrefix: String { "/_etcd/registry/" + token }
    public var sizeKey: String { registryPrefix + "/_config/size" }
    /// etcd reads members with this prefix as is (no trailing slash), so muster does too.
    public var membersPrefix: String { registryPrefix + "/members" }
    /// The key a member of this ID registers under.
    public func memberKey(id: UInt64) -> String { membersPrefix + "/" + String(id, radix: 16) }

    func addFoundingKeys(to context: inout TemplateContext, member: MemberPlan) {
        context["discoveryToken"] = .text(token)
        context["discoveryEndpoints"] = .list(endpoints.map { ["url": .text($0)] })
        context["discoverySecure"] = .flag(tls)
        if clientCertificate {
            context["discoveryCert"] = .text(member.paths.discoveryCert)
            context["discoveryKey"] = .text(member.paths.discoveryKey)
            context["discoveryCACert"] = .text(member.paths.discoveryCACert)
        }
    }
}

extension ClusterPlan {
    public var discoveryV3: DiscoveryV3Plan? {
        if case .discoveryV3(let plan) = bootstrap { return plan }
        return nil
    }
}

extension Planner {
    /// The v3 plan of a discovery cluster whose members speak v3 (`DiscoveryPlanning` chose).
    func discoveryV3Plan(_ cluster: Cluster, source: DiscoverySource, size: Int,
                         backends: [String: ClusterPlan]) throws -> DiscoveryV3Plan {
        guard let token = facts.discoveryTokens[cluster.name]?.token else {
            throw PlanError(description: "no discovery token recorded for cluster '\(cluster.name)'")
        }
        switch source {
        case .cluster(let backendName):
            guard let backend = backends[backendName], !backend.members.isEmpty else {
                throw PlanError(description: "discovery backend '\(backendName)' of cluster '\(cluster.name)' has no members")
            }
            // Members dial every member of the backend, by the URL it advertises to clients.
            return DiscoveryV3Plan(backendCluster: backendName, token: token, endpoints: backend.members.map { $0.clientURLs[0] },
                                   size: size, tls: backend.tls, clientCertificate: backend.tls)
        case .endpoints(let urls):
            return DiscoveryV3Plan(backendCluster: nil, token: token, endpoints: urls.map(URLParts.trimmingSlashes), size: size,
                                   tls: urls.contains { $0.hasPrefix("https://") },
                                   clientCertificate: cluster.discoveryOptions?.tls != nil)
        case .url, .service:
            throw PlanError(description: "cluster '\(cluster.name)': v3 discovery needs an inventory cluster or endpoints as its backend")
        }
    }
}
