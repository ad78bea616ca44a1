import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

/// `muster replace`: a member whose data is lost or corrupt, or whose host was rebuilt, leaves
/// the cluster and joins it again as a learner with an empty data dir (its old one moved aside,
/// deleted only with `wipeData`). A short list of steps (`ReplaceSteps`): backup, remove (and
/// stop), move the data aside, write the member's files for joining, join (learner, start,
/// promote), wait for health; then verify.
public struct Replace: Sendable {
    public var builder: PlanBuilder
    public var member: String
    public var options: RunOptions
    public var progress: Progress
    public var wipeData = false
    public var dryRun = false
    /// A snapshot from the other voters before the member is removed (`--no-backup` skips it).
    public var backup = true

    public init(builder: PlanBuilder, member: String, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.member = member
        self.options = options
        self.progress = progress
    }

    public func run() async throws -> VerificationReport? {
        var builder = builder
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: true, readOnly: dryRun)
        defer { workspace.state.unlock() }
        guard let cluster = workspace.plan.clusters.first, let target = cluster.member(named: member) else {
            throw MusterError(.usage, "cluster '\(builder.cluster ?? "")' of \(builder.inventoryPath) has no member \(member)")
        }
        guard let record = try workspace.state.clusterRecord(cluster.name),
              let old = record.members.first(where: { $0.name == member }), let oldID = UInt64(old.id, radix: 16) else {
            throw DeployError(host: target.host, cluster: cluster.name, step: "replace", kind: .refused,
                              "cluster '\(cluster.name)' has no record of member \(member) in \(workspace.state.directory): muster replaces only members of clusters it formed (run `muster up` first)")
        }
        let removal = RemovalPlan(name: target.name, id: oldID, peerURL: old.peerURLs.first ?? target.peerURL, member: target)
        let steps = ReplaceSteps.plan(target, removal: removal, in: cluster, backup: backup, wipeData: wipeData)
        let runner = StepRunner(command: "replace", progress: progress)
        if dryRun {
            runner.list(steps)
            return nil
        }
        var certificates: ClusterCertificates?
        if cluster.tls {
            certificates = try ClusterCertificates(cluster: cluster, stateDirectory: workspace.state.directory,
                                                   reissuing: [target.name])
            try certificates?.commitAuthorities()
        }
        return try await ClusterOperations.session(cluster, workspace: workspace, options: options, progress: progress) { operations in
            try await replace(target, steps: steps, runner: runner, cluster: cluster, workspace: workspace,
                              operations: operations, certificates: certificates)
        }
    }

    private func replace(_ target: MemberPlan, steps: [Step], runner: StepRunner, cluster: ClusterPlan, workspace: Workspace,
                         operations: ClusterOperations, certificates: ClusterCertificates?) async throws -> VerificationReport {
        let tls = operations.tls
        let fleet = operations.fleet
        var operations = operations
        // Every other voter healthy first: with one of them down, removing this member would
        // leave the cluster one failure from losing quorum.
        if let unhealthy = try await operations.firstUnhealthy(cluster.members.filter { $0.name != target.name }, of: cluster) {
            throw DeployError(host: unhealthy.host, cluster: cluster.name, step: "replace", kind: .refused,
                              "cluster '\(cluster.name)': \(target.name) not replaced: member \(unhealthy.name) is not healthy; nothing was changed")
        }
        // Removed before its replacement is added on every line; on lines under strict reconfig
        // check (etcd issue 21640) this order is the only one etcd takes while it is down.
        if !operations.isRunning(target), (try? EtcdVersionProfile(cluster.memberVersion))?.refusesAddWhileVoterDown == true {
            progress.note("cluster \(cluster.name): etcd \(cluster.memberVersion) refuses a member add while a voter is down (strict reconfig check, etcd issue 21640): \(target.name) is removed before its replacement is added")
        }
        // The cluster as planned now: once the member is removed, planned again from the record,
        // where it is one that joins.
        var current = cluster
        var state = workspace
        let joining = { (name: String) throws -> MemberPlan in
            guard let member = current.member(named: name) else {
                throw DeployError(host: target.host, cluster: cluster.name, step: "replace", "the plan lost member \(name)")
            }
            return member
        }
        // The new marker names this state and the cluster's incarnation, as `up` writes them.
        let marker = try MarkerIdentity.current(of: cluster.name, in: workspace.state)
        try await runner.run(steps) { step in
            switch step.action {
            case .backup(let voters):
                _ = try await operations.backup(current, voters: voters, state: state.state)
            case .remove(let removal):
                try await operations.remove(removal, cluster: current, wipe: false)
                try StepRecords.removed(removal, from: cluster.name, in: state.state)
                state = try state.reloaded()
                guard let replanned = state.plan.cluster(named: cluster.name) else {
                    throw DeployError(host: target.host, cluster: cluster.name, step: "replace", "the plan lost cluster \(cluster.name)")
                }
                current = replanned
            case .moveDataAside(let member, let wipe):
                try await operations.moveDataAside(member, wipe: wipe)
                // The facts again, as the join needs them: the data dir is empty now.
                operations = try await ClusterOperations.gather(current, inventory: state.inventory, fleet: fleet, progress: progress,
                                                                options: options, tls: tls)
                operations.markerIdentities[cluster.name] = marker
            case .writeFiles(let member):
                let member = try joining(member.name)
                var script = ApplyScript()
                for file in HostFiles.toWrite(for: ClusterPlan(copying: current, members: [member]), in: state.plan,
                                              extra: certificates?.files ?? [], facts: operations.facts) {
                    script.write(file)
                }
                if !script.isEmpty { try await fleet.check(member.host, "apply", script.text, stdin: script.input, timeout: 120) }
                try certificates?.commit()
            case .join(let member):
                let joined = try await operations.join(try joining(member.name), cluster: current)
                try StepRecords.joined(joined, in: state.state)
            case .waitHealthy:
                try await operations.waitHealthy(current)
            case .readdress, .start, .restart, .upgrade, .ship, .stop, .restoreData, .writeConfigs, .defragment, .save:
                throw DeployError(host: target.host, cluster: cluster.name, step: step.name, "replace has no step \(step.name)")
            }
        }
        return try await operations.verify(current, expectation: try state.expectation(for: current))
    }
}

extension ClusterOperations {
    /// Operations over `fleet` with fresh facts of the cluster's hosts (one command per host).
    static func gather(_ cluster: ClusterPlan, inventory: Inventory, fleet: Fleet, progress: Progress, options: RunOptions,
                       tls: [String: EtcdTLS]) async throws -> ClusterOperations {
        // Every host at once: one round trip in all.
        let outputs = try await withThrowingTaskGroup(of: (String, String).self) { group in
            for host in cluster.hosts {
                let members = cluster.members.filter { $0.host == host }
                let script = HostFacts.script(for: members, files: [], directories: [], spaces: members.map(\.paths.data))
                group.addTask { (host, try await fleet.check(host, "facts", script, timeout: 30)) }
            }
            var outputs: [String: String] = [:]
            for try await (host, output) in group { outputs[host] = output }
            return outputs
        }
        return ClusterOperations(fleet: fleet, facts: HostFacts.gathered(outputs, inventory: inventory), progress: progress,
                                 options: options, tls: tls)
    }
}
