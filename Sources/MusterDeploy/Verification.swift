import Foundation
import MusterEtcd
import MusterInventory
import MusterPlan

/// `muster verify`: checks running clusters against the plan, changing nothing.
public enum Verification {
    /// Verifies each cluster; `fleet` is needed only for tunnels (`viaSSH` or loopback clients).
    public static func run(plan: Plan, inventory: Inventory, options: RunOptions, viaSSH: Bool,
                           progress: Progress) async throws -> [VerificationReport] {
        let needsSSH = viaSSH || plan.clusters.contains { $0.members.contains { $0.endpoint.contains("://127.0.0.1:") } }
        var fleet: Fleet?
        if needsSSH {
            let hosts = Set(plan.clusters.flatMap { $0.members.map(\.host) }).sorted().compactMap(inventory.host(named:))
            fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        } else {
            for cluster in plan.clusters {
                for member in cluster.members { try options.addressGuard(member.address) }
            }
        }
        defer { if let fleet { Task { await fleet.close() } } }
        var reports: [VerificationReport] = []
        for cluster in plan.clusters {
            reports.append(try await verify(cluster, fleet: fleet, viaSSH: viaSSH))
        }
        if let fleet { await fleet.close() }
        return reports
    }

    static func verify(_ cluster: ClusterPlan, fleet: Fleet?, viaSSH: Bool) async throws -> VerificationReport {
        var endpoints: Endpoints?
        if let fleet { endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: viaSSH) }
        let mapping = endpoints
        let report = await Verifier(expectation: cluster.expectation, memberClient: { member in
            mapping?.client(for: member) ?? EtcdClient(baseURL: member.endpoint)
        }).run()
        await endpoints?.close()
        return report
    }
}
