import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

/// `muster restore`: a cluster rebuilt from a snapshot file, as a new cluster (new token, new
/// member and cluster IDs) with the snapshot's keys.
///
/// The file is checked before any host is contacted (etcd's digest, its cluster version against
/// the members'); a cluster that answers healthy is left alone without `force`. Then, as steps
/// of `ClusterOperations`: the restore tool and the snapshot go to every host (nothing stopped
/// yet), every member stops, each member's data is restored on its own host and the old data
/// dir moved aside (never deleted), the members start and must be healthy and verify against
/// the new IDs, which the cluster record then holds (`verify`, `up` follow them).
///
/// Where the restore runs: on each member's host, with the tool of the members' own minor
/// (etcdctl for 3.4, etcdutl for 3.5) shipped as `up` ships etcdctl. The restored data dir is
/// about the snapshot's size plus a 64 MB preallocated WAL, and depends on the member (its name
/// and peer URL are written into it); restoring on the controller would mean one restore per
/// member there and each data dir sent whole, while a host-side restore moves the snapshot once
/// per host and the tool once (cached by hash), and the N restores run side by side.
public struct Restore: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    public var snapshot: String
    public var force = false
    /// List the steps; change nothing.
    public var dryRun = false
    /// `snapshot` is a member's raw `member/snap/db` (`restore --from-member`), not a snapshot as
    /// etcd streams it: it carries no sha256 at its end, so the restore tool runs with
    /// `--skip-hash-check` (etcd's disaster-recovery guide).
    public var rawDatabase = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress, snapshot: String) {
        self.builder = builder
        self.options = options
        self.progress = progress
        self.snapshot = snapshot
    }

    public struct Outcome: Sendable {
        public struct Member: Sendable {
            public var name: String
            public var host: String
            public var id: UInt64
            /// Where its old data dir went, nil when it had none.
            public var movedAside: String?
        }
        public var cluster: String
        public var file: String
        public var revision: Int64
        public var token: String
        public var clusterID: UInt64
        public var members: [Member]
        public var report: VerificationReport
        public var bytesSent: Int
    }

    /// The outcome of the restore; nil for a dry run, which lists the steps (`RestoreSteps`)
    /// after the file's checks and changes nothing on any host or in the state.
    public func run() async throws -> Outcome? {
        let (workspace, cluster) = try await builder.loadSoleCluster(readOnly: dryRun)
        defer { workspace.state.unlock() }
        // The file and the tool first: a damaged or too new snapshot touches no host.
        let file = try await localSnapshot(stateDirectory: workspace.state.directory, cluster: cluster.name)  // s3:// downloaded and checked
        let (version, name, stateDirectory) = (cluster.memberVersion, cluster.name, workspace.state.directory)
        let raw = rawDatabase
        let facts = try await offPool { try Self.check(file, memberVersion: version, cluster: name, stateDirectory: stateDirectory, raw: raw) }  // hashes the whole file
        // A file muster saved and recorded must still be that file: a whole snapshot put in its
        // place (another cluster's, an older one) would pass etcd's own digest.
        if let recorded = try workspace.state.clusterRecord(cluster.name)?.snapshots.first(where: { $0.file == file }),
           recorded.sha256 != facts.fileSHA256 {
            throw MusterError(.refused, cluster: cluster.name, step: "snapshot", "\(file) is not the snapshot muster saved under that name (recorded: revision \(recorded.revision), sha256 \(recorded.sha256); the file's sha256 is \(facts.fileSHA256)): it was replaced or altered since; nothing was changed on any host")
        }
        progress.note("snapshot \(file): revision \(facts.revision), \(facts.size) bytes, sha256 \(facts.fileSHA256), etcd cluster version \(facts.clusterVersion ?? "unknown")")
        let tool = try await RestoreTool.locate(workspace, cluster: cluster.name, version: cluster.memberVersion, compressing: !dryRun)

        // A restore founds the cluster again: the planner says its IDs and initial-cluster, and
        // renders the conf.yml every later `up` will render from the record this run writes.
        let stamp = SnapshotCatalog.stamp(Date())
        let run = String(LocalState.newToken().prefix(8))
        let token = "\(cluster.name)-restored-\(stamp)-\(run)"
        // The run's random part in the aside too: a restore cut and run again within the same
        // second must not find its own first aside in the way.
        let founding = Founding(token: token, asideSuffix: ".muster-before-restore-\(stamp)-\(run)",
                                workspace: try workspace.replanned(restoring: cluster.name, token: token))
        guard let restored = founding.workspace.plan.cluster(named: cluster.name), restored.clusterID != nil,
              restored.members.allSatisfy({ $0.memberID != nil && $0.initialCluster != nil }) else {
            throw DeployError(host: nil, cluster: cluster.name, step: "restore", "the plan of the restored cluster '\(cluster.name)' has no IDs")
        }
        let steps = RestoreSteps.plan(cluster, restored: restored, snapshot: file, revision: facts.revision, tool: tool.shipped.fileName)
        let runner = StepRunner(command: "restore", progress: progress)
        if dryRun {
            runner.list(steps)
            return nil
        }

        // The markers (restore's and start's) name this state and the cluster's incarnation, as
        // `up` writes them.
        let marker = try MarkerIdentity.current(of: cluster.name, in: workspace.state, makingIncarnation: true)
        let digest = facts.fileSHA256
        // In a directory root alone may enter: the file checked is the file restored.
        let remoteSnapshot: @Sendable (MemberPlan) -> String = { member in RestoreStaging.snapshot(of: member, sha256: digest) }
        // The facts say whether the tool and the snapshot are there already.
        let shipped = { (host: String) in [tool.shipped.remotePath] + cluster.members.filter { $0.host == host }.map(remoteSnapshot) }
        return try await ClusterOperations.session(cluster, workspace: workspace, options: options, progress: progress,
                                                   writingAsRoot: true, files: shipped) { operations in
            var operations = operations
            operations.markerIdentities[cluster.name] = marker
            return try await restore(cluster, as: restored, founding: founding, steps: steps, runner: runner, file: file, facts: facts,
                                     tool: tool, remoteSnapshot: remoteSnapshot, workspace: workspace, operations: operations)
        }
    }

    /// What one run founds the cluster again with.
    private struct Founding {
        var token: String
        /// Appended to each member's data dir for the old one moved aside.
        var asideSuffix: String
        /// The workspace planned as the restore founds the cluster.
        var workspace: Workspace
    }

    private func restore(_ cluster: ClusterPlan, as restored: ClusterPlan, founding: Founding, steps: [Step], runner: StepRunner,
                         file: String, facts: SnapshotFileFacts, tool: RestoreTool, remoteSnapshot: @escaping @Sendable (MemberPlan) -> String,
                         workspace: Workspace, operations: ClusterOperations) async throws -> Outcome {
        if !force {
            let healthy = try await operations.healthyMembers(cluster)
            if !healthy.isEmpty {
                throw DeployError(host: nil, cluster: cluster.name, step: "restore", kind: .refused,
                                  "cluster '\(cluster.name)' is running (\(healthy.map(\.name).joined(separator: ", ")) healthy): a restore replaces all its keys with the snapshot's (revision \(facts.revision)) and gives it new IDs; nothing was changed. Pass --force to restore over it")
            }
        }
        let clusterID = restored.clusterID!
        let marker = operations.markerIdentities[cluster.name]
        progress.note("cluster \(cluster.name): restoring revision \(facts.revision) as cluster \(EtcdIDs.hex(clusterID)) (token \(founding.token))")
        var bytes = 0
        var members: [Outcome.Member] = []
        try await runner.run(steps) { step in
            switch step.action {
            case .ship(_, _, let hosts):
                // Everything the restore needs goes to the hosts while the cluster still runs.
                bytes += try await operations.ship(tool.shipped, to: hosts, step: "tool")
                try await operations.prepareRestoreStaging(cluster.members.filter { hosts.contains($0.host) })
                bytes += try await operations.place(file, sha256: facts.fileSHA256, at: { host in remoteSnapshot(cluster.members.first { $0.host == host }!) },
                                                    on: hosts, step: "upload")
            case .stop(let member):
                try await operations.stop(member, wipe: false)
            case .restoreData(let member, _):
                let aside = try await operations.restoreData(member, .init(
                    snapshot: remoteSnapshot(member), sha256: facts.fileSHA256, tool: tool.shipped.remotePath,
                    initialCluster: member.initialCluster!, token: founding.token, marker: member.markerLines(marker),
                    asideSuffix: founding.asideSuffix, skipHashCheck: rawDatabase))
                members.append(.init(name: member.name, host: member.host, id: member.memberID!, movedAside: aside))
            case .writeConfigs(let written):
                // conf.yml names the certificates this muster issues (a gateway's from etcd 3.5, for
                // a cluster an earlier muster made): they go with it, renewed as `up` would.
                let planned = ClusterPlan(copying: restored, members: written)
                let certificates = restored.tls ? try ClusterCertificates(cluster: planned, stateDirectory: workspace.state.directory) : nil
                try await operations.writeConfigs(of: planned, from: founding.workspace.plan, with: certificates?.files ?? [])
                try certificates?.commit()
            case .start(let member):
                try await operations.start(member)
            case .waitHealthy:
                try await operations.waitHealthy(restored)
            case .backup, .readdress, .remove, .join, .restart, .upgrade, .moveDataAside, .writeFiles, .defragment, .save:
                throw DeployError(host: nil, cluster: cluster.name, step: step.name, "restore has no step \(step.name)")
            }
        }
        let report = try await operations.verify(restored, expectation: restored.expectation)
        guard report.ok else {
            throw DeployError(host: nil, cluster: cluster.name, step: "verify", kind: .check,
                              "the restored cluster '\(cluster.name)' does not verify (its record keeps the old IDs):\n" + report.table())
        }
        // Verified: from now on the record's founding is the restore's. Members removed before
        // stay recorded, and so do recorded members the inventory dropped: their hosts may still
        // hold their data (`down --wipe-data` wipes it).
        let founders = restored.members.map {
            ClusterRecord.Member(name: $0.name, id: EtcdIDs.hex($0.memberID!), peerURLs: [$0.peerURL])
        }
        try workspace.state.records.update(cluster.name) { record in
            let previous = record
            var founded = ClusterRecord(cluster: cluster.name, clusterID: EtcdIDs.hex(clusterID),
                                        formedAt: previous?.formedAt ?? Date(), founders: founders)
            // A founder's earlier incarnations (a replaced member) are not: their data was its data dir.
            let founderNames = Set(founders.map(\.name))
            founded.removed = ((previous?.removed ?? []) + (previous?.members ?? [])).filter { !founderNames.contains($0.name) }
            founded.restoreToken = founding.token
            founded.incarnation = marker?.incarnation
            founded.snapshots = previous?.snapshots ?? []
            record = founded
        }
        for member in cluster.members { await operations.removeFile(remoteSnapshot(member), on: member.host) }
        progress.note("cluster \(cluster.name): restored from \(file) at revision \(facts.revision); old data dirs kept beside the new ones (\(founding.asideSuffix))")
        return Outcome(cluster: cluster.name, file: file, revision: facts.revision, token: founding.token, clusterID: clusterID,
                       members: members, report: report, bytesSent: bytes)
    }

    /// The snapshot must be whole (etcd's digest at its end matches) and of a minor no newer than
    /// the members': etcd does not downgrade a data dir.
    static func check(_ file: String, memberVersion: String, cluster: String, stateDirectory: String? = nil, raw: Bool = false) throws -> SnapshotFileFacts {
        guard FileManager.default.fileExists(atPath: file) else {
            throw MusterError(.input, cluster: cluster, step: "snapshot", "snapshot \(file) does not exist")
        }
        let facts: SnapshotFileFacts
        do { facts = try SnapshotFile.inspect(file) } catch {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(error); nothing was changed on any host")
        }
        guard raw || facts.embeddedSHA256 != nil else {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(file) carries no sha256 at its end (\(facts.size) bytes): not a snapshot as etcd streams it, or cut short; nothing was changed on any host")
        }
        guard raw || facts.hashMatches else {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(file) is damaged: its database hashes to \(facts.databaseSHA256), the sha256 at its end says \(facts.embeddedSHA256 ?? ""); nothing was changed on any host")
        }
        if let version = facts.clusterVersion, let written = EtcdVersion(version),
           let members = try? EtcdVersionProfile(memberVersion), !members.runsDataWritten(by: written) {
            let acceptable = stateDirectory.flatMap { SnapshotCatalog.newestRestorable(cluster: cluster, stateDirectory: $0, memberVersion: memberVersion) }
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "the snapshot comes from an etcd \(version) cluster, newer than the members' \(memberVersion): etcd cannot run a data dir of a newer minor; nothing was changed on any host" + (acceptable.map { ". The newest snapshot of '\(cluster)' they can restore: \($0)" } ?? ""))
        }
        return facts
    }
}

/// The controller's restore tool of the members' minor, as it is shipped to hosts: etcdctl
/// (`member.etcdctl`, else beside `member.binary`) for 3.4, etcdutl (beside `member.binary`) from
/// 3.5, where etcdctl's restore is deprecated.
struct RestoreTool {
    var shipped: ShippedBinary

    /// `compressing`: its zstd copy made (or found) for shipping; a dry run ships nothing.
    static func locate(_ workspace: Workspace, cluster: String, version: String, compressing: Bool = true) async throws -> RestoreTool {
        let member = workspace.inventory.memberSettings(of: cluster)
        let directory = (member.binary as NSString).deletingLastPathComponent
        let profile = try EtcdVersionProfile(version)
        let usesEtcdutl = profile.restoreTool == .etcdutl
        let name = usesEtcdutl ? "etcdutl" : "etcdctl"
        let local = usesEtcdutl ? directory + "/etcdutl" : (member.etcdctl ?? directory + "/etcdctl")
        guard FileManager.default.isExecutableFile(atPath: local) else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "restore needs \(name) \(version) on the controller at \(local) (beside member.binary\(usesEtcdutl ? "" : ", or named by member.etcdctl")); it is shipped to the hosts")
        }
        let said = try await LocalProcess.runOffPool([local, "version"], timeout: 20)
        let first = said.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
        guard let toolVersion = first.split(separator: " ").last.map(String.init),
              let tool = EtcdVersion(toolVersion), tool.sameLine(as: profile.version) else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "\(local) says '\(first)', not \(name) \(profile.line) like the members (\(version))")
        }
        let remote = (workspace.plan.clusters.first?.members.first?.paths.etcdctl as NSString?)?.deletingLastPathComponent ?? workspace.inventory.paths.install
        var shipped = try ShippedBinary(localPath: local, remotePath: "\(remote)/\(name)-\(toolVersion)")
        if compressing { shipped.compressedPath = await BinaryCache.compressedCopy(of: shipped) }
        return RestoreTool(shipped: shipped)
    }
}
