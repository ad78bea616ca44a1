import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

/// `muster down`: stops members and what their bootstrap set up; etcd data stays unless
/// `wipeData`. With `--cluster NAME`, only NAME: a formed cluster no longer needs its backend.
public struct TearDown: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    public var wipeData = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public func run() async throws {
        var builder = builder
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: true)
        defer { workspace.state.unlock() }
        let hostNames = Set(workspace.plan.clusters.flatMap(\.hosts))
        let hosts = workspace.inventory.hosts.filter { hostNames.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        // Each host says whether systemd is there and who runs each member, so every stop goes
        // the way its member was started.
        let members = workspace.plan.clusters.flatMap(\.members)
        let scripts = Dictionary(uniqueKeysWithValues: hosts.map { host in
            (host.name, HostFacts.script(for: members.filter { $0.host == host.name }, files: [], directories: []))
        })
        let (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress,
                                                       thenRun: (step: "facts", script: scripts))
        let operations = ClusterOperations(fleet: fleet, facts: HostFacts.gathered(outputs, inventory: workspace.inventory), progress: progress,
                                           options: options, tls: [:])
        do {
            try await stop(workspace, operations: operations)
            await fleet.close()
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func stop(_ workspace: Workspace, operations: ClusterOperations) async throws {
        // Dependent clusters first: a discovery backend goes down last.
        for cluster in workspace.plan.clusters.reversed() {
            // One member at a time: a leader told to stop hands leadership to a live peer first,
            // and waits up to 7 s for one that is itself stopping (measured: `down` of three
            // members stopped in parallel took 7.2 s; the last member, alone, stops at once).
            for member in cluster.members {
                try checkpoint("down.stop-member")
                try await operations.stop(member, wipe: wipeData, disable: true)
            }
            try await mode(for: cluster).tearDown(cluster, in: workspace, wipe: wipeData, operations: operations)
            if wipeData { workspace.state.removeClusterRecord(cluster.name) }
        }
    }
}
