import Foundation
import MusterEtcd
import MusterPlan
import MusterWorkspace

extension ClusterOperations {
    /// Connects to `cluster`'s hosts, gathers their facts and runs `body` over the operations
    /// value; the connections close however `body` ends. For commands that change or maintain
    /// one formed cluster (`defrag`, `snapshot save`) and need no files of the plan on the hosts.
    /// `connecting: false`: no host is contacted (members answer on their own addresses), the
    /// operations have no sessions and no facts.
    static func session<T: Sendable>(_ cluster: ClusterPlan, workspace: Workspace, options: RunOptions, progress: Progress,
                                     connecting: Bool = true, _ body: (ClusterOperations) async throws -> T) async throws -> T {
        let tls = try ClusterCertificates.clientTLS(for: cluster, stateDirectory: workspace.state.directory)
        let clientTLS = tls.map { [cluster.name: $0] } ?? [:]
        guard connecting else {
            return try await body(ClusterOperations(fleet: .none(), facts: [:], progress: progress, options: options, tls: clientTLS))
        }
        let hosts = workspace.inventory.hosts.filter { cluster.hosts.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        let fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        do {
            let operations = try await gather(cluster, inventory: workspace.inventory, fleet: fleet, progress: progress, options: options,
                                              tls: clientTLS)
            let value = try await body(operations)
            await fleet.close()
            return value
        } catch {
            await fleet.close()
            throw error
        }
    }
}
