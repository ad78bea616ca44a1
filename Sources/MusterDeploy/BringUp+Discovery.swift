import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH

/// Discovery tokens: asked of services, refreshed when spent, sized on etcd backends.
extension BringUp {
    /// A service backend hands out the token URL: ask it once and record it before planning.
    func askServicesForTokens(_ built: PlanBuilder.Result) async throws -> PlanBuilder.Result {
        var tokens = try built.state.discoveryTokens()
        var asked = false
        for cluster in built.plan.clusters {
            guard let discovery = cluster.discovery, discovery.isPlaceholder, let service = discovery.serviceURL else { continue }
            try options.addressGuard([hostOfURL(service)])
            let url = try await DiscoveryService.newToken(serviceURL: service, size: discovery.size)
            progress.note("cluster \(cluster.name): discovery service gave \(url)")
            tokens[cluster.name] = DiscoveryToken(token: String(url.split(separator: "/").last ?? ""), serviceURL: url)
            asked = true
        }
        guard asked else { return built }
        try built.state.saveDiscoveryTokens(tokens)
        built.state.unlock()
        return try builder.build(lock: true)
    }

    /// A token that already holds members of a cluster that never formed is spent: make a new one.
    func refreshDiscoveryToken(for name: String, _ built: PlanBuilder.Result,
                                       facts: [String: HostFacts]) async throws -> PlanBuilder.Result {
        guard let cluster = built.plan.cluster(named: name), let discovery = cluster.discovery,
              !discovery.isPlaceholder else { return built }
        var tokens = try built.state.discoveryTokens()
        if tokens[name]?.formed == true { return built }
        if cluster.members.contains(where: { facts[$0.host]?.members[name]?.hasData == true }) { return built }
        try options.addressGuard([hostOfURL(discovery.url)])
        let registered = try await V2Keys.registeredMembers(discoveryURL: discovery.url)
        guard !registered.isEmpty else { return built }
        progress.note("cluster \(name): token \(discovery.token) already holds \(registered.count) member(s); making a fresh one")
        if let service = discovery.serviceURL {
            // A service token is spent the same way; the service hands out the next one.
            let url = try await DiscoveryService.newToken(serviceURL: service, size: discovery.size)
            tokens[name] = DiscoveryToken(token: String(url.split(separator: "/").last ?? ""), serviceURL: url)
        } else {
            tokens[name] = DiscoveryToken(token: LocalState.newToken())
        }
        try built.state.saveDiscoveryTokens(tokens)
        built.state.unlock()
        return try builder.build(lock: true)
    }

    func registerDiscovery(_ cluster: ClusterPlan) async throws {
        guard let discovery = cluster.discovery, let sizeKey = discovery.sizeKeyURL else { return }
        let base = String(sizeKey.dropLast("/_config/size".count))
        try options.addressGuard([hostOfURL(base)])
        do {
            try await V2Keys.setDiscoverySize(baseURL: base, size: discovery.size)
        } catch {
            throw DeployError(host: nil, step: "discovery", "cannot set the size of token \(discovery.token) at \(sizeKey): \(error) (the backend needs enable-v2: true)")
        }
        progress.note("cluster \(cluster.name): discovery size \(discovery.size) registered at \(sizeKey)")
    }

    func markFormed(_ cluster: ClusterPlan, state: LocalState) throws {
        guard cluster.discovery != nil else { return }
        var tokens = try state.discoveryTokens()
        tokens[cluster.name]?.formed = true
        try state.saveDiscoveryTokens(tokens)
    }
}
