import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

/// `muster down`: stops members and what their bootstrap set up; etcd data stays unless
/// `wipeData`. With `--cluster NAME`, only NAME: a formed cluster no longer needs its backend.
///
/// `wipeData` deletes every current member's data, its private keys and muster's copies of the
/// keyspace beside it (moved aside by restore or replace), and the data of recorded removed
/// members on hosts still in the inventory (the others are named: their data remains).
/// `purge` (one cluster, named) also removes every other file muster put there for it.
public struct TearDown: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    public var wipeData = false
    public var purge = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public func run() async throws {
        var builder = builder
        builder.includeBackendOfUnformedCluster = false
        if purge, builder.cluster == nil {
            throw MusterError(.usage, "--purge removes every file muster put on the hosts for one cluster: name it with --cluster NAME")
        }
        let workspace = try await builder.load(lock: true)
        defer { workspace.state.unlock() }
        let removed = try removedMembers(workspace)
        let hostNames = Set(workspace.plan.clusters.flatMap(\.hosts) + (wiping ? removed.values.flatMap { $0.map(\.host) } : []))
        let hosts = workspace.inventory.hosts.filter { hostNames.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        // Each host says whether systemd is there and who runs each member, so every stop goes
        // the way its member was started.
        let members = workspace.plan.clusters.flatMap(\.members)
        let scripts = Dictionary(uniqueKeysWithValues: hosts.map { host in
            (host.name, HostFacts.script(for: members.filter { $0.host == host.name }, files: [], directories: []))
        })
        // A host that holds only removed members' data may be gone for good: its data is named.
        let removedOnly = Set(removed.values.flatMap { $0.map(\.host) }).subtracting(workspace.plan.clusters.flatMap(\.hosts))
        let (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress,
                                                       thenRun: (step: "facts", script: scripts), tolerating: removedOnly)
        let operations = ClusterOperations(fleet: fleet, facts: HostFacts.gathered(outputs, inventory: workspace.inventory), progress: progress,
                                           options: options, tls: [:])
        do {
            try await stop(workspace, removed: removed, operations: operations)
            await fleet.close()
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func stop(_ workspace: Workspace, removed: [String: [(name: String, host: String, paths: MemberPaths)]],
                      operations: ClusterOperations) async throws {
        // Dependent clusters first: a discovery backend goes down last.
        for cluster in workspace.plan.clusters.reversed() {
            // One member at a time: a leader told to stop hands leadership to a live peer first,
            // and waits up to 7 s for one that is itself stopping (measured: `down` of three
            // members stopped in parallel took 7.2 s; the last member, alone, stops at once).
            // Wiped as it stops: one command per member.
            for member in cluster.members {
                try checkpoint("down.stop-member")
                if wiping {
                    try await operations.stopAndWipe(member, purge: purge)
                } else {
                    try await operations.stop(member, wipe: false, disable: true)
                }
            }
            try await mode(for: cluster).tearDown(cluster, in: workspace, wipe: wiping, operations: operations)
            guard wiping else { continue }
            for member in removed[cluster.name] ?? [] {
                guard operations.facts[member.host] != nil else {
                    progress.note("cluster \(cluster.name): removed member \(member.name)'s host did not answer: its data remains in \(member.paths.data) there")
                    continue
                }
                try await operations.wipe(member.name, of: cluster.name, paths: member.paths, on: member.host, purge: purge)
            }
            let paths = cluster.members.first?.paths.data ?? "its data dir"
            for gone in try workspace.state.clusterRecord(cluster.name)?.removed ?? []
            where workspace.inventory.host(named: gone.name) == nil && !cluster.members.contains(where: { $0.name == gone.name }) {
                progress.note("cluster \(cluster.name): removed member \(gone.name) is on no host of the inventory: its data remains in \(paths) on its host")
            }
            workspace.state.removeClusterRecord(cluster.name)
        }
    }

    private var wiping: Bool { wipeData || purge }

    /// By cluster: members the record says were removed, whose host the inventory still has and
    /// which are not members now (those are wiped as members), as they were planned there.
    private func removedMembers(_ workspace: Workspace) throws -> [String: [(name: String, host: String, paths: MemberPaths)]] {
        var found: [String: [(name: String, host: String, paths: MemberPaths)]] = [:]
        for cluster in workspace.plan.clusters {
            guard let record = try workspace.state.clusterRecord(cluster.name), let paths = cluster.members.first?.paths ?? cluster.removals.first?.member?.paths else { continue }
            let current = Set(cluster.members.map(\.name))
            let names = record.removed.map(\.name).filter { !current.contains($0) }.uniqued()
            // A member is named after its host.
            found[cluster.name] = names.compactMap { name in workspace.inventory.host(named: name).map { (name, $0.name, paths) } }
        }
        return found
    }
}
