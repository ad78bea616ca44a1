import Foundation
import MusterBasics
import MusterEtcd
import MusterPKI
import MusterPlan
import MusterWorkspace

/// etcd's v3 discovery (3.6+ members): muster makes the token, writes its size key in the backend
/// through the v3 API before the first member starts, replaces a token someone else's members
/// registered under, keeps it in the state until the cluster formed, and then deletes its keys
/// (etcd never does). The members register themselves (`/_etcd/registry/TOKEN/members/ID`).
struct DiscoveryV3Bootstrap: BootstrapMode {
    let discovery: DiscoveryV3Plan

    /// A token that holds registrations other than this cluster's own (spent by an earlier
    /// bring-up, or another cluster's) is replaced while no member has data. A token the cluster
    /// formed under is never replaced: with every member's data gone that is a refusal.
    func refresh(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                 operations: ClusterOperations) async throws -> Workspace {
        guard !cluster.members.contains(where: { operations.facts[$0.host]?.members[cluster.name]?.hasData == true })
        else { return workspace }
        if workspace.tokens[cluster.name]?.formed == true {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery", kind: .refused,
                              "cluster '\(cluster.name)': discovery token \(discovery.token) is spent: the cluster formed under it (\(workspace.state.directory)/discovery-tokens.json), but no member has data any more; `muster restore --from SNAPSHOT` brings the data back, `muster down --wipe-data` lets the next `up` found the cluster anew with a fresh token")
        }
        let registry = try registry(of: cluster, in: workspace)
        try await guardAddresses(cluster, options: context.options)
        let registered: [V3DiscoveryRegistry.Registration]
        do {
            registered = try await registry.registrations()
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot read discovery token \(discovery.token) at \(discovery.endpoints.joined(separator: ",")): \(error)")
        }
        let foreign = Self.foreign(registered, cluster: cluster, discovery: discovery)
        guard !foreign.isEmpty else { return workspace }
        context.progress.note("cluster \(cluster.name): token \(discovery.token) already holds \(foreign.count) registration(s) not of this cluster (\(foreign.map(\.key).joined(separator: ", "))); making a fresh one")
        var tokens = workspace.tokens
        tokens[cluster.name] = DiscoveryToken(token: LocalState.newToken())
        return try workspace.replanned(tokens: tokens)
    }

    /// Registrations that are not one of this cluster's members as planned, key and value: what
    /// etcd would count towards `size` in their place (its key is `members/ID`, ID in lowercase
    /// hex, its value `NAME=PEERURL`).
    static func foreign(_ registered: [V3DiscoveryRegistry.Registration], cluster: ClusterPlan,
                        discovery: DiscoveryV3Plan) -> [V3DiscoveryRegistry.Registration] {
        let ours = Set(cluster.members.compactMap { member in
            member.memberID.map { "\(discovery.memberKey(id: $0)) \(member.name)=\(member.peerURL)" }
        })
        return registered.filter { !ours.contains("\($0.key) \($0.value)") }
    }

    /// The token saved (from here on the hosts use it), then its size key in the backend. A
    /// formed cluster's member that starts again (or a newcomer that joins) needs neither: its
    /// token's keys are gone and stay gone, and the backend need not even be up.
    func beforeStart(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                     operations: ClusterOperations) async throws {
        guard workspace.tokens[cluster.name]?.formed != true else { return }
        try workspace.saveToken(of: cluster.name)
        let registry = try registry(of: cluster, in: workspace)
        try await guardAddresses(cluster, options: context.options)
        do {
            try await registry.setSize(discovery.size)
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "discovery",
                              "cluster '\(cluster.name)': cannot write the size key \(registry.sizeKey) at \(discovery.endpoints.joined(separator: ",")): \(error)")
        }
        context.progress.note("cluster \(cluster.name): discovery size \(discovery.size) written at \(registry.sizeKey)")
    }

    /// Formed: the token is recorded as such, and its keys leave the backend. A failed delete
    /// is reported, not fatal: the cluster formed, and the keys only take room.
    func afterFormed(_ cluster: ClusterPlan, in workspace: inout Workspace, context: BootstrapContext) async throws {
        guard workspace.tokens[cluster.name]?.formed == false else { return }
        await deleteKeys(cluster, workspace: workspace, options: context.options, progress: context.progress)
        try workspace.markFormed(cluster.name)
    }

    /// A wiped cluster bootstraps again, with a fresh token; its old one's keys go.
    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws {
        guard wipe else { return }
        await deleteKeys(cluster, workspace: workspace, options: operations.options, progress: operations.progress)
        try workspace.state.updateDiscoveryTokens { $0[cluster.name] = nil }
    }

    private func deleteKeys(_ cluster: ClusterPlan, workspace: Workspace, options: RunOptions, progress: Progress) async {
        do {
            let registry = try registry(of: cluster, in: workspace)
            try await guardAddresses(cluster, options: options)
            let deleted = try await registry.deleteAll()
            progress.note("cluster \(cluster.name): \(deleted) key(s) of discovery token \(discovery.token) deleted under \(registry.prefix)/")
        } catch {
            progress.note("cluster \(cluster.name): the keys of discovery token \(discovery.token) stay in the backend (\(error)); `etcdctl del --prefix \(discovery.registryPrefix)/` removes them")
        }
    }

    /// The backend's registry as muster reaches it: an inventory backend with muster's client
    /// certificate of that cluster, an external one with the inventory's `tls:` files.
    private func registry(of cluster: ClusterPlan, in workspace: Workspace) throws -> V3DiscoveryRegistry {
        var tls: EtcdTLS?
        if let backend = discovery.backendCluster {
            if discovery.tls {
                let directory = ClusterPKI.directory(stateDirectory: workspace.state.directory, cluster: backend)
                tls = EtcdTLS(caPath: directory + "/ca.crt", certPath: directory + "/client.crt", keyPath: directory + "/client.key")
            }
        } else if let files = workspace.inventory.cluster(named: cluster.name)?.discoveryOptions?.tls {
            tls = EtcdTLS(caPath: files.ca, certPath: files.cert, keyPath: files.key)
        }
        return V3DiscoveryRegistry(endpoints: discovery.endpoints, prefix: discovery.registryPrefix, tls: tls)
    }

    /// The guard may run a process (the sandbox's route check): off the cooperative pool.
    private func guardAddresses(_ cluster: ClusterPlan, options: RunOptions) async throws {
        do {
            try await options.checkAddresses(discovery.endpoints.map(URLParts.host(of:)))
        } catch {
            throw DeployError(host: nil, cluster: cluster.name, step: "route", "cluster '\(cluster.name)': discovery at \(discovery.endpoints.joined(separator: ",")): \(error)")
        }
    }
}
