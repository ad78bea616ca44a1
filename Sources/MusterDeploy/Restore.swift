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

    public func run() async throws -> Outcome {
        let (workspace, cluster) = try await builder.loadSoleCluster()
        defer { workspace.state.unlock() }
        // The file and the tool first: a damaged or too new snapshot touches no host.
        let file = try await localSnapshot(stateDirectory: workspace.state.directory, cluster: cluster.name)  // s3:// downloaded and checked
        let (version, name, stateDirectory) = (cluster.memberVersion, cluster.name, workspace.state.directory)
        let facts = try await offPool { try Self.check(file, memberVersion: version, cluster: name, stateDirectory: stateDirectory) }  // hashes the whole file
        // A file muster saved and recorded must still be that file: a whole snapshot put in its
        // place (another cluster's, an older one) would pass etcd's own digest.
        if let recorded = try workspace.state.clusterRecord(cluster.name)?.snapshots.first(where: { $0.file == file }),
           recorded.sha256 != facts.fileSHA256 {
            throw MusterError(.refused, cluster: cluster.name, step: "snapshot", "\(file) is not the snapshot muster saved under that name (recorded: revision \(recorded.revision), sha256 \(recorded.sha256); the file's sha256 is \(facts.fileSHA256)): it was replaced or altered since; nothing was changed on any host")
        }
        progress.note("snapshot \(file): revision \(facts.revision), \(facts.size) bytes, sha256 \(facts.fileSHA256), etcd cluster version \(facts.clusterVersion ?? "unknown")")
        let tool = try await RestoreTool.locate(workspace, version: cluster.memberVersion)

        // The markers (restore's and start's) name this state and the cluster's incarnation, as
        // `up` writes them.
        let marker = try MarkerIdentity.current(of: cluster.name, in: workspace.state, makingIncarnation: true)
        let hosts = cluster.members.map(\.host).uniqued().compactMap(workspace.inventory.host(named:))
        try workspace.checkIdentityFiles(of: hosts)
        let digest = facts.fileSHA256
        let remoteSnapshot: @Sendable (MemberPlan) -> String = { member in "\(member.paths.data).muster-restore-\(digest.prefix(16)).db" }
        var scripts: [String: String] = [:]
        for host in hosts {
            let members = cluster.members.filter { $0.host == host.name }
            scripts[host.name] = HostFacts.script(for: members, files: [tool.shipped.remotePath] + members.map(remoteSnapshot), directories: [])
        }
        let (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress,
                                                       thenRun: (step: "facts", script: scripts))
        let tls = try ClusterCertificates.clientTLS(for: cluster, stateDirectory: workspace.state.directory)
        var operations = ClusterOperations(fleet: fleet, facts: HostFacts.gathered(outputs, inventory: workspace.inventory), progress: progress,
                                           options: options, tls: tls.map { [cluster.name: $0] } ?? [:])
        operations.markerIdentities[cluster.name] = marker
        do {
            let outcome = try await restore(cluster, file: file, facts: facts, tool: tool, remoteSnapshot: remoteSnapshot,
                                            workspace: workspace, operations: operations)
            await fleet.close()
            return outcome
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func restore(_ cluster: ClusterPlan, file: String, facts: SnapshotFileFacts, tool: RestoreTool,
                         remoteSnapshot: @escaping @Sendable (MemberPlan) -> String, workspace: Workspace,
                         operations: ClusterOperations) async throws -> Outcome {
        if !force {
            let healthy = try await operations.healthyMembers(cluster)
            if !healthy.isEmpty {
                throw DeployError(host: nil, cluster: cluster.name, step: "restore", kind: .refused,
                                  "cluster '\(cluster.name)' is running (\(healthy.map(\.name).joined(separator: ", ")) healthy): a restore replaces all its keys with the snapshot's (revision \(facts.revision)) and gives it new IDs; nothing was changed. Pass --force to restore over it")
            }
        }
        // Everything the restore needs goes to the hosts while the cluster still runs.
        let memberHosts = cluster.members.map(\.host).uniqued()
        var bytes = try await operations.ship(tool.shipped, to: memberHosts, step: "tool")
        bytes += try await operations.place(file, sha256: facts.fileSHA256, at: { host in remoteSnapshot(cluster.members.first { $0.host == host }!) },
                                            on: memberHosts, step: "upload")

        for member in cluster.members { try await operations.stop(member, wipe: false) }
        try checkpoint("restore.after-stop")

        let stamp = SnapshotCatalog.stamp(Date())
        let run = String(LocalState.newToken().prefix(8))
        let token = "\(cluster.name)-restored-\(stamp)-\(run)"
        // The run's random part too: a restore cut and run again within the same second must not
        // find its own first aside in the way.
        let asideSuffix = ".muster-before-restore-\(stamp)-\(run)"
        // A restore founds the cluster again: the planner says its IDs and initial-cluster, and
        // renders the conf.yml every later `up` will render from the record this run writes.
        let founding = try workspace.replanned(restoring: cluster.name, token: token)
        guard let restored = founding.plan.cluster(named: cluster.name), let clusterID = restored.clusterID,
              let initialCluster = restored.members.first?.initialCluster,
              restored.members.allSatisfy({ $0.memberID != nil }) else {
            throw DeployError(host: nil, cluster: cluster.name, step: "restore", "the plan of the restored cluster '\(cluster.name)' has no IDs")
        }
        let marker = operations.markerIdentities[cluster.name]
        progress.note("cluster \(cluster.name): restoring revision \(facts.revision) as cluster \(EtcdIDs.hex(clusterID)) (token \(token))")
        var members: [Outcome.Member] = []
        for (index, member) in restored.members.enumerated() {
            let aside = try await operations.restoreData(member, .init(
                snapshot: remoteSnapshot(member), sha256: facts.fileSHA256, tool: tool.shipped.remotePath,
                initialCluster: initialCluster, token: token, marker: member.markerLines(marker), asideSuffix: asideSuffix))
            members.append(.init(name: member.name, host: member.host, id: member.memberID!, movedAside: aside))
            if index == 0 { try checkpoint("restore.after-first-member") }
        }
        try await operations.writeConfigs(of: restored, from: founding.plan)
        try checkpoint("restore.before-start")

        for member in restored.members { try await operations.start(member) }
        try await operations.waitHealthy(restored)
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
        let previous = try workspace.state.clusterRecord(cluster.name)
        var record = ClusterRecord(cluster: cluster.name, clusterID: EtcdIDs.hex(clusterID),
                                   formedAt: previous?.formedAt ?? Date(), founders: founders)
        // A founder's earlier incarnations (a replaced member) are not: their data was its data dir.
        let founderNames = Set(founders.map(\.name))
        record.removed = ((previous?.removed ?? []) + (previous?.members ?? [])).filter { !founderNames.contains($0.name) }
        record.restoreToken = token
        record.incarnation = operations.markerIdentities[cluster.name]?.incarnation
        record.snapshots = previous?.snapshots ?? []
        try workspace.state.save(record)
        for member in cluster.members { await operations.removeFile(remoteSnapshot(member), on: member.host) }
        progress.note("cluster \(cluster.name): restored from \(file) at revision \(facts.revision); old data dirs kept beside the new ones (\(asideSuffix))")
        return Outcome(cluster: cluster.name, file: file, revision: facts.revision, token: token, clusterID: clusterID,
                       members: members, report: report, bytesSent: bytes)
    }

    /// The snapshot must be whole (etcd's digest at its end matches) and of a minor no newer than
    /// the members': etcd does not downgrade a data dir.
    static func check(_ file: String, memberVersion: String, cluster: String, stateDirectory: String? = nil) throws -> SnapshotFileFacts {
        guard FileManager.default.fileExists(atPath: file) else {
            throw MusterError(.input, cluster: cluster, step: "snapshot", "snapshot \(file) does not exist")
        }
        let facts: SnapshotFileFacts
        do { facts = try SnapshotFile.inspect(file) } catch {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(error); nothing was changed on any host")
        }
        guard facts.embeddedSHA256 != nil else {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(file) carries no sha256 at its end (\(facts.size) bytes): not a snapshot as etcd streams it, or cut short; nothing was changed on any host")
        }
        guard facts.hashMatches else {
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "\(file) is damaged: its database hashes to \(facts.databaseSHA256), the sha256 at its end says \(facts.embeddedSHA256 ?? ""); nothing was changed on any host")
        }
        if let version = facts.clusterVersion, let file = MinorVersion(version), let members = MinorVersion(memberVersion), file > members {
            let acceptable = stateDirectory.flatMap { SnapshotCatalog.newestRestorable(cluster: cluster, stateDirectory: $0, memberVersion: memberVersion) }
            throw MusterError(.refused, cluster: cluster, step: "snapshot", "the snapshot comes from an etcd \(version) cluster, newer than the members' \(memberVersion): etcd cannot run a data dir of a newer minor; nothing was changed on any host" + (acceptable.map { ". The newest snapshot of '\(cluster)' they can restore: \($0)" } ?? ""))
        }
        return facts
    }
}

/// `MAJOR.MINOR` of a version string.
struct MinorVersion: Comparable {
    var major: Int, minor: Int
    init?(_ text: String) {
        let parts = text.split(separator: ".").prefix(2).map { Int($0) }
        guard parts.count == 2, let major = parts[0], let minor = parts[1] else { return nil }
        self.major = major
        self.minor = minor
    }
    static func < (a: Self, b: Self) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
}

/// The controller's restore tool of the members' minor, as it is shipped to hosts: etcdctl
/// (`member.etcdctl`, else beside `member.binary`) for 3.4, etcdutl (beside `member.binary`) from
/// 3.5, where etcdctl's restore is deprecated.
struct RestoreTool {
    var shipped: ShippedBinary

    static func locate(_ workspace: Workspace, version: String) async throws -> RestoreTool {
        let member = workspace.inventory.memberSettings(of: workspace.plan.clusters.first?.name ?? "")
        let directory = (member.binary as NSString).deletingLastPathComponent
        guard let minor = MinorVersion(version) else { throw MusterError(.input, "member version \(version) is not MAJOR.MINOR.PATCH") }
        let usesEtcdutl = try EtcdVersionProfile(version).restoreTool == .etcdutl
        let name = usesEtcdutl ? "etcdutl" : "etcdctl"
        let local = usesEtcdutl ? directory + "/etcdutl" : (member.etcdctl ?? directory + "/etcdctl")
        guard FileManager.default.isExecutableFile(atPath: local) else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "restore needs \(name) \(version) on the controller at \(local) (beside member.binary\(usesEtcdutl ? "" : ", or named by member.etcdctl")); it is shipped to the hosts")
        }
        let said = try await LocalProcess.runOffPool([local, "version"], timeout: 20)
        let first = said.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
        guard let toolVersion = first.split(separator: " ").last.map(String.init), MinorVersion(toolVersion) == minor else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "\(local) says '\(first)', not \(name) \(minor.major).\(minor.minor) like the members (\(version))")
        }
        let remote = (workspace.plan.clusters.first?.members.first?.paths.etcdctl as NSString?)?.deletingLastPathComponent ?? workspace.inventory.paths.install
        var shipped = try ShippedBinary(localPath: local, remotePath: "\(remote)/\(name)-\(toolVersion)")
        shipped.compressedPath = await BinaryCache.compressedCopy(of: shipped)
        return RestoreTool(shipped: shipped)
    }
}
