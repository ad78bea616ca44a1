import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

/// `muster replace`: a member whose data is lost or corrupt, or whose host was rebuilt, leaves
/// the cluster and joins it again as a learner with an empty data dir (its old one moved aside,
/// deleted only with `wipeData`). A short orchestration of `ClusterOperations` steps: remove,
/// stop, move the data aside, write the member's files for joining, join (learner, start,
/// promote), verify.
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
        var workspace = try await builder.load(lock: true, readOnly: dryRun)
        defer { workspace.state.unlock() }
        guard let cluster = workspace.plan.clusters.first, let target = cluster.member(named: member) else {
            throw MusterError(.usage, "cluster '\(builder.cluster ?? "")' of \(builder.inventoryPath) has no member \(member)")
        }
        guard var record = try workspace.state.clusterRecord(cluster.name),
              let old = record.members.first(where: { $0.name == member }), let oldID = UInt64(old.id, radix: 16) else {
            throw DeployError(host: target.host, cluster: cluster.name, step: "replace", kind: .refused,
                              "cluster '\(cluster.name)' has no record of member \(member) in \(workspace.state.directory): muster replaces only members of clusters it formed (run `muster up` first)")
        }
        let steps = (backup ? ["take a snapshot of cluster '\(cluster.name)' from its other voters"] : []) + ["remove \(member) (\(old.id)) from cluster '\(cluster.name)', leadership moved first if it leads",
                     "stop \(member) and \(wipeData ? "delete" : "move aside") its data dir \(target.paths.data)",
                     "add \(member) back as a learner, start it with an empty data dir, promote it once in sync"]
        if dryRun {
            for step in steps { progress.note("dry run: \(step)") }
            return nil
        }
        let hosts = workspace.inventory.hosts.filter { cluster.hosts.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        var certificates: ClusterCertificates?
        if cluster.tls { certificates = try ClusterCertificates(cluster: cluster, stateDirectory: workspace.state.directory) }
        let fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        do {
            let report = try await replace(target, oldID: oldID, old: old, cluster: cluster, workspace: &workspace,
                                           record: &record, fleet: fleet, certificates: certificates)
            await fleet.close()
            return report
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func replace(_ target: MemberPlan, oldID: UInt64, old: ClusterRecord.Member, cluster: ClusterPlan,
                         workspace: inout Workspace, record: inout ClusterRecord, fleet: Fleet,
                         certificates: ClusterCertificates?) async throws -> VerificationReport {
        let tls = certificates.map { [cluster.name: $0.tls] } ?? [:]
        var operations = try await ClusterOperations.gather(cluster, inventory: workspace.inventory, fleet: fleet, progress: progress, options: options, tls: tls)
        // Every other voter healthy first: with one of them down, removing this member would
        // leave the cluster one failure from losing quorum.
        if let unhealthy = try await operations.firstUnhealthy(cluster.members.filter { $0.name != target.name }, of: cluster) {
            throw DeployError(host: unhealthy.host, cluster: cluster.name, step: "replace", kind: .refused,
                              "cluster '\(cluster.name)': \(target.name) not replaced: member \(unhealthy.name) is not healthy; nothing was changed")
        }
        if backup {
            let voters = operations.runningMembers(cluster).filter { $0.name != target.name }
            _ = try await operations.backup(cluster, voters: voters, workspace: workspace, builder: builder)
        }
        try await operations.remove(RemovalPlan(name: target.name, id: oldID, peerURL: old.peerURLs.first ?? target.peerURL, member: target),
                                    cluster: cluster, wipe: false)
        record.removed.append(old)
        try workspace.state.save(record)
        try checkpoint("replace.after-remove")
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let data = Shell.quote(target.paths.data)
        let aside = wipeData ? "rm -rf \(data) && echo \"data wiped: \(target.paths.data)\""
            : "[ ! -e \(data) ] || { mv \(data) \(Shell.quote(target.paths.data + ".muster-replaced-" + stamp)) && echo \"old data moved to \(target.paths.data).muster-replaced-\(stamp)\"; }"
        let moved = try await fleet.check(target.host, "replace", "rm -f \(Shell.quote(target.paths.marker)) && \(aside) && install -d -m 0700 -o etcd -g etcd \(data)")
        progress.host(target.host, "replace", moved.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "no data dir" : moved.trimmingCharacters(in: .whitespacesAndNewlines))

        // Planned again from the record: the member is now one that joins.
        workspace = try workspace.reloaded()
        guard let replanned = workspace.plan.cluster(named: cluster.name), let joining = replanned.member(named: target.name) else {
            throw DeployError(host: target.host, cluster: cluster.name, step: "replace", "the plan lost member \(target.name)")
        }
        operations = try await ClusterOperations.gather(replanned, inventory: workspace.inventory, fleet: fleet, progress: progress, options: options, tls: tls)
        var script = ApplyScript()
        for file in HostFiles.toWrite(for: ClusterPlan(copying: replanned, members: [joining]), in: workspace.plan,
                                      extra: certificates?.files ?? [], facts: operations.facts) {
            script.write(file)
        }
        if !script.isEmpty { try await fleet.check(target.host, "apply", script.text, stdin: script.input, timeout: 120) }
        try certificates?.commit()
        let joined = try await operations.join(joining, cluster: replanned)
        if let id = joined.memberID {
            record.added.append(ClusterRecord.Member(name: joined.name, id: EtcdIDs.hex(id), peerURLs: [joined.peerURL],
                                                     initialCluster: joined.join?.initialCluster))
            try workspace.state.save(record)
        }
        try await operations.waitHealthy(replanned)
        return try await operations.verify(replanned, expectation: try workspace.expectation(for: replanned))
    }
}

extension ClusterOperations {
    /// Operations over `fleet` with fresh facts of the cluster's hosts (one command per host).
    static func gather(_ cluster: ClusterPlan, inventory: Inventory, fleet: Fleet, progress: Progress, options: RunOptions,
                       tls: [String: EtcdTLS]) async throws -> ClusterOperations {
        var facts: [String: HostFacts] = [:]
        for host in cluster.hosts {
            let members = cluster.members.filter { $0.host == host }
            let output = try await fleet.check(host, "facts", HostFacts.script(for: members, files: [], directories: []), timeout: 30)
            facts[host] = HostFacts.gathered([host: output], inventory: inventory)[host]
        }
        return ClusterOperations(fleet: fleet, facts: facts, progress: progress, options: options, tls: tls)
    }
}
