import Foundation
import MusterEtcd
import MusterPlan
import MusterWorkspace

extension ClusterOperations {
    /// Connects to `cluster`'s hosts, gathers their facts (each host's as soon as it is
    /// connected) and runs `body` over the operations value; the connections close however `body`
    /// ends. For commands that change or maintain one formed cluster (`replace`, `restore`,
    /// `defrag`, `snapshot save`) and write no whole plan to the hosts. `files`: paths whose hash
    /// the facts should hold, by host (what is there already is not sent again). `connecting:
    /// false`: no host is contacted (members answer on their own addresses), the operations
    /// have no sessions and no facts. `writingAsRoot` (`replace`, `restore`): a parent of a path
    /// root writes for the members that another user could write is refused, as `up`'s preflight
    /// refuses it, before `body` runs.
    static func session<T: Sendable>(_ cluster: ClusterPlan, workspace: Workspace, options: RunOptions, progress: Progress,
                                     connecting: Bool = true, writingAsRoot: Bool = false, files: (String) -> [String] = { _ in [] },
                                     _ body: (ClusterOperations) async throws -> T) async throws -> T {
        let tls = try ClusterCertificates.clientTLS(for: cluster, stateDirectory: workspace.state.directory)
        let clientTLS = tls.map { [cluster.name: $0] } ?? [:]
        guard connecting else {
            return try await body(ClusterOperations(fleet: .none(), facts: [:], progress: progress, options: options, tls: clientTLS))
        }
        // The members' hosts: not a DNS server's or a departing member's, which none of these
        // commands needs (and which may be gone).
        let memberHosts = Set(cluster.members.map(\.host))
        let hosts = workspace.inventory.hosts.filter { memberHosts.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        var scripts: [String: String] = [:], rootWrites: [String: [String]] = [:]
        for host in hosts {
            let members = cluster.members.filter { $0.host == host.name }
            rootWrites[host.name] = writingAsRoot ? Preflight.rootWrittenPaths(files: members.map(\.paths.config), members: members) : []
            scripts[host.name] = HostFacts.script(for: members, files: files(host.name), directories: [], rootWrites: rootWrites[host.name] ?? [])
        }
        let (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress, thenRun: (step: "facts", script: scripts))
        do {
            let facts = HostFacts.gathered(outputs, inventory: workspace.inventory)
            let problems = facts.keys.sorted().flatMap { host in
                Preflight.writableParentProblems(host, facts[host]!, rootWrites: rootWrites[host] ?? [])
            }
            if !problems.isEmpty {
                throw DeployError(host: nil, step: "preflight", kind: .refused, "nothing was changed on any host:\n  " + problems.joined(separator: "\n  "))
            }
            let operations = ClusterOperations(fleet: fleet, facts: facts,
                                               progress: progress, options: options, tls: clientTLS)
            let value = try await body(operations)
            await fleet.close()
            return value
        } catch {
            await fleet.close()
            throw error
        }
    }
}
