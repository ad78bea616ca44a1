import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterWorkspace

/// Discovery through an etcd's v2 keys (a cluster of the inventory, or a URL) or through a
/// discovery.etcd.io-style service: the token is asked for, refreshed when spent, sized, and
/// recorded as formed.
struct DiscoveryBootstrap: BootstrapMode {
    let discovery: DiscoveryPlan

    /// A service hands out the token URL: ask it once. A dry run asks nothing of anyone.
    func prepare(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext) async throws -> Workspace {
        guard discovery.isPlaceholder, let service = discovery.serviceURL, !context.dryRun else { return workspace }
        let token = try await newServiceToken(service, cluster: cluster, context: context)
        var tokens = workspace.tokens
        tokens[cluster.name] = token
        return try workspace.replanned(tokens: tokens)
    }

    /// A token that already holds members of a cluster that never formed is spent: a fresh one.
    func refresh(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                 operations: ClusterOperations) async throws -> Workspace {
        guard !discovery.isPlaceholder, workspace.tokens[cluster.name]?.formed != true,
              !cluster.members.contains(where: { operations.facts[$0.host]?.members[cluster.name]?.hasData == true })
        else { return workspace }
        try guardAddress(of: discovery.url, cluster: cluster, context: context)
        let registered: [DiscoveredMember]
        do {
            registered = try await V2Keys.registeredMembers(discoveryURL: discovery.url)
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot read discovery token \(discovery.token) at \(discovery.url): \(error)")
        }
        guard !registered.isEmpty else { return workspace }
        context.progress.note("cluster \(cluster.name): token \(discovery.token) already holds \(registered.count) member(s); making a fresh one")
        var tokens = workspace.tokens
        if let service = discovery.serviceURL {
            tokens[cluster.name] = try await newServiceToken(service, cluster: cluster, context: context)
        } else {
            tokens[cluster.name] = DiscoveryToken(token: LocalState.newToken())
        }
        return try workspace.replanned(tokens: tokens)
    }

    /// The size key on an etcd backend, and the token saved: from here on the hosts use it.
    func beforeStart(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                     operations: ClusterOperations) async throws {
        try workspace.saveToken(of: cluster.name)
        guard let sizeKey = discovery.sizeKeyURL else { return }
        let base = String(sizeKey.dropLast("/_config/size".count))
        try guardAddress(of: base, cluster: cluster, context: context)
        do {
            try await V2Keys.setDiscoverySize(baseURL: base, size: discovery.size)
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot set the size of token \(discovery.token) at \(sizeKey): \(error) (the backend needs enable-v2: true)")
        }
        context.progress.note("cluster \(cluster.name): discovery size \(discovery.size) registered at \(sizeKey)")
    }

    func afterFormed(_ cluster: ClusterPlan, in workspace: inout Workspace) throws {
        try workspace.markFormed(cluster.name)
    }

    /// A wiped cluster bootstraps again, with a fresh token.
    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws {
        guard wipe else { return }
        var tokens = try workspace.state.discoveryTokens()
        tokens[cluster.name] = nil
        try workspace.state.saveDiscoveryTokens(tokens)
    }

    private func newServiceToken(_ service: String, cluster: ClusterPlan, context: BootstrapContext) async throws -> DiscoveryToken {
        try guardAddress(of: service, cluster: cluster, context: context)
        let url: String
        do {
            url = try await DiscoveryService.newToken(serviceURL: service, size: discovery.size)
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot get a token from discovery service \(service): \(error)")
        }
        context.progress.note("cluster \(cluster.name): discovery service gave \(url)")
        return DiscoveryToken(token: String(url.split(separator: "/").last ?? ""), serviceURL: url)
    }

    private func guardAddress(of url: String, cluster: ClusterPlan, context: BootstrapContext) throws {
        do {
            try context.options.addressGuard([URLParts.host(of: url)])
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "route", "cluster '\(cluster.name)': discovery at \(url): \(error)")
        }
    }
}
