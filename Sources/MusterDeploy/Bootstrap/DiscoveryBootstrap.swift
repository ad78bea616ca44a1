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

    /// A token that cannot found the cluster is replaced while no member has data: one holding
    /// members of a cluster that never formed (spent, or full of someone else's), or one the
    /// service does not know (dropped, or another service's). A token the cluster formed under is
    /// never replaced: with every member's data gone that is a refusal, before any file is written.
    func refresh(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                 operations: ClusterOperations) async throws -> Workspace {
        guard !discovery.isPlaceholder,
              !cluster.members.contains(where: { operations.facts[$0.host]?.members[cluster.name]?.hasData == true })
        else { return workspace }
        if workspace.tokens[cluster.name]?.formed == true {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery", kind: .refused,
                              "cluster '\(cluster.name)': discovery token \(discovery.token) at \(discovery.url) is spent: the cluster formed under it (\(workspace.state.directory)/discovery-tokens.json), but no member has data any more; `muster restore --from SNAPSHOT` brings the data back, `muster down --wipe-data` lets the next `up` found the cluster anew with a fresh token")
        }
        try await guardAddress(of: discovery.url, cluster: cluster, context: context)
        let registered: [DiscoveredMember]
        let known: Bool
        do {
            registered = try await V2Keys.registeredMembers(discoveryURL: discovery.url)
            // Every token a service hands out has its size key; an etcd backend's gets it in beforeStart.
            if discovery.serviceURL == nil || !registered.isEmpty {
                known = true
            } else {
                known = try await V2Keys.discoverySize(baseURL: discovery.url) != nil
            }
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot read discovery token \(discovery.token) at \(discovery.url): \(error)")
        }
        guard !registered.isEmpty || !known else { return workspace }
        context.progress.note(known
            ? "cluster \(cluster.name): token \(discovery.token) already holds \(registered.count) member(s); making a fresh one"
            : "cluster \(cluster.name): token \(discovery.token) is unknown to \(discovery.serviceURL ?? discovery.url) (dropped, or another service's); making a fresh one")
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
        try await guardAddress(of: base, cluster: cluster, context: context)
        do {
            try await V2Keys.setDiscoverySize(baseURL: base, size: discovery.size)
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot set the size of token \(discovery.token) at \(sizeKey): \(error) (the backend needs enable-v2: true)")
        }
        context.progress.note("cluster \(cluster.name): discovery size \(discovery.size) registered at \(sizeKey)")
    }

    func afterFormed(_ cluster: ClusterPlan, in workspace: inout Workspace, context: BootstrapContext) async throws {
        try workspace.markFormed(cluster.name)
    }

    /// A wiped cluster bootstraps again, with a fresh token.
    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws {
        guard wipe else { return }
        try workspace.state.updateDiscoveryTokens { $0[cluster.name] = nil }
    }

    private func newServiceToken(_ service: String, cluster: ClusterPlan, context: BootstrapContext) async throws -> DiscoveryToken {
        try await guardAddress(of: service, cluster: cluster, context: context)
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

    /// The guard may run a process (the sandbox's route check): off the cooperative pool.
    private func guardAddress(of url: String, cluster: ClusterPlan, context: BootstrapContext) async throws {
        do {
            try await context.options.checkAddresses([URLParts.host(of: url)])
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "route", "cluster '\(cluster.name)': discovery at \(url): \(error)")
        }
    }
}
