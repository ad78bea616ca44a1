import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

/// `muster verify`: checks running clusters against the plan, changing nothing.
public enum Verification {
    /// Verifies each cluster of the workspace's plan; `fleet` is needed only for tunnels
    /// (`viaSSH` or loopback clients).
    /// `sample`: how long the metric checks watch each member (two reads of `/metrics` that far
    /// apart).
    public static func run(workspace: Workspace, options: RunOptions, viaSSH: Bool, sample: Duration = .seconds(2),
                           progress: Progress) async throws -> [VerificationReport] {
        let plan = workspace.plan
        let needsSSH = viaSSH || plan.clusters.contains { $0.members.contains { $0.endpoint.contains("://127.0.0.1:") } }
        var fleet: Fleet?
        if needsSSH {
            let hosts = Set(plan.clusters.flatMap { $0.members.map(\.host) }).sorted().compactMap(workspace.inventory.host(named:))
            try workspace.checkIdentityFiles(of: hosts)
            fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        } else {
            try await options.checkAddresses(plan.clusters.flatMap { $0.members.map(\.address) })
        }
        var reports: [VerificationReport] = []
        do {
            for cluster in plan.clusters {
                let tls = try ClusterCertificates.clientTLS(for: cluster, stateDirectory: workspace.state.directory)
                let record = try workspace.state.clusterRecord(cluster.name)
                let expectation = workspace.expectation(for: cluster, record: record)
                let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: viaSSH, tls: tls, peers: true)
                let peerTLS = try ClusterCertificates.peerProbeTLS(for: cluster, stateDirectory: workspace.state.directory)
                // The metric window opens before the verifier's own write and read, so that a
                // quiet cluster still shows a few fsyncs and commits in it.
                let production = ProductionChecks(
                    cluster: cluster, clients: expectation.members.map { ($0, endpoints.client(for: $0)) },
                    peerClients: cluster.members.map { ($0, endpoints.peerClient(for: $0, tls: peerTLS)) },
                    stateDirectory: workspace.state.directory, record: record, sample: sample)
                async let sampled = production.sample()
                var report = await Verifier(expectation: expectation, memberClient: { endpoints.client(for: $0) }).run()
                let peerNames = Dictionary(report.members.map { (EtcdIDs.hex($0.id), $0.name) }, uniquingKeysWith: { a, _ in a })
                report.checks += await production.checks(sampled, peerNames: peerNames)
                await endpoints.close()
                if let fleet {
                    let operations = try await ClusterOperations.gather(cluster, inventory: workspace.inventory, fleet: fleet,
                                                                        progress: progress, options: options, tls: [:])
                    // The facts carry each supervisor's state: no second round trip for it.
                    report.supervisors = operations.supervisorStatesFromPreflight(cluster)
                    report.checks.append(configCurrent(cluster, facts: operations.facts))
                    report.checks.append(DiskSpace.check(cluster, quota: DiskSpace.quotaBytes(of: cluster.name, inventory: workspace.inventory),
                                                         facts: operations.facts))
                    let hosts = Array(Set(cluster.members.map(\.host))).sorted()
                    report.checks.append(ClockSkew.check(await ClockSkew.measure(hosts, fleet: fleet)))
                }
                reports.append(report)
            }
        } catch {
            await fleet?.close()
            throw error
        }
        await fleet?.close()
        return reports
    }

    /// With SSH: every member started after muster last wrote its conf.yml and certificates.
    /// etcd reads them only at start, so a member started before (a rolling restart cut short)
    /// serves healthy on the old ones; `up` restarts it.
    static func configCurrent(_ cluster: ClusterPlan, facts: [String: HostFacts]) -> VerificationReport.Check {
        let behind = cluster.members.filter { facts[$0.host]?.members[cluster.name]?.runsOnOlderFiles == true }
        guard !behind.isEmpty else {
            return .init(name: "config-current", ok: true, detail: "every member started after muster last wrote its files")
        }
        let names = behind.map { "\($0.name) on \($0.host)" }.joined(separator: ", ")
        return .init(name: "config-current", ok: false,
                     detail: "\(names) started before muster last wrote its conf.yml or certificates, and runs on the old ones (a rolling restart cut short?): `muster up` restarts it")
    }

    static func verify(_ cluster: ClusterPlan, expectation: ClusterExpectation? = nil, fleet: Fleet?, viaSSH: Bool,
                       tls: EtcdTLS?) async throws -> VerificationReport {
        let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: viaSSH, tls: tls)
        let report = await Verifier(expectation: expectation ?? cluster.expectation, memberClient: { member in
            endpoints.client(for: member)
        }).run()
        await endpoints.close()
        return report
    }
}
