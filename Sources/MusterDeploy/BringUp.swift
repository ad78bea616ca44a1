import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH
import MusterWorkspace

/// `muster up`: preflight every host, push binary and files, let each bootstrap mode do its part,
/// start members gated on their peers, wait for health, verify, record what formed.
///
/// Clusters come up in waves: a cluster waits only for the cluster it discovers through; the
/// clusters of one wave start side by side. The run holds the inventory's lock to its end.
public struct BringUp: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    public var dryRun = false
    /// Members the inventory no longer lists are removed only when asked (`--remove-members`).
    public var removeMembers = false
    /// With `removeMembers`: also delete removed members' data dirs.
    public var wipeRemovedData = false
    /// Allows what etcd calls unsafe: a 2-member cluster shrunk to 1.
    public var force = false
    /// A snapshot before any restart or membership change of a running cluster (`--no-backup`
    /// turns it off).
    public var backup = true
    /// fdatasync measured on each new member's data dir's filesystem in preflight, a disk too slow
    /// for etcd refused (`--skip-disk-check` turns it off).
    public var checkDisks = true

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public struct Outcome: Sendable {
        public var reports: [VerificationReport]
        public var changed: Bool
        public var bytesSent: Int
        /// Per host: files written, binaries sent, members started and restarted.
        public var hosts: [ChangeLedger.HostChanges] = []
        /// Snapshots taken before restarts or membership changes.
        public var backups: [String] = []
    }

    public func run() async throws -> Outcome {
        var workspace = try await builder.load(lock: true, readOnly: dryRun)
        defer { workspace.state.unlock() }
        var options = options
        options.recordHostKeys = !dryRun
        let context = BootstrapContext(options: options, progress: progress, dryRun: dryRun)
        for cluster in workspace.plan.clusters {
            workspace = try await mode(for: cluster).prepare(cluster, in: workspace, context: context)
        }
        try MembershipRules.refuseUnasked(workspace.plan, removeMembers: removeMembers, force: force, dryRun: dryRun)
        let hostNames = Set(workspace.plan.clusters.flatMap(\.hosts))
        let hosts = workspace.inventory.hosts.filter { hostNames.contains($0.name) }
        try workspace.checkIdentityFiles(of: hosts)
        // Hashing the binaries (and compressing one the cache lacks) overlaps with connecting.
        let sources = try binarySources(workspace)
        async let binaries = Self.shippedBinaries(sources)
        // Certificates come from muster's local CA before any host is contacted, in memory: a
        // CA this run makes is kept only once preflight passed, the rest once on their hosts (a
        // dry run keeps none).
        var certificates: [String: ClusterCertificates] = [:]
        for cluster in workspace.plan.clusters where cluster.tls {
            certificates[cluster.name] = try ClusterCertificates(cluster: cluster, stateDirectory: workspace.state.directory)
        }
        // v3 discovery through a TLS backend: a client certificate of the backend's CA (or the
        // inventory's files for an external one) goes to each member with its own.
        for cluster in workspace.plan.clusters {
            guard let discovery = cluster.discoveryV3, discovery.clientCertificate else { continue }
            let backend = discovery.backendCluster.flatMap { certificates[$0] }
            try certificates[cluster.name]?.addDiscoveryClient(discovery, of: cluster, backend: backend,
                                                              external: workspace.inventory.cluster(named: cluster.name)?.discoveryOptions?.tls)
        }
        // What the hosts' markers are compared with, and what this run writes into new ones.
        let (identity, identityIsNew) = try workspace.state.identityOrNew()
        var incarnations: [String: String] = [:], newIncarnations: Set<String> = []
        for cluster in workspace.plan.clusters {
            if let token = try workspace.state.incarnation(of: cluster.name) {
                incarnations[cluster.name] = token
            } else if try workspace.state.clusterRecord(cluster.name) == nil {
                incarnations[cluster.name] = StateIdentity.newToken()
                newIncarnations.insert(cluster.name)
            }
        }
        var preflight = Preflight(progress: progress, stateDirectory: workspace.state.directory)
        preflight.identity = identity
        preflight.incarnations = incarnations
        preflight.authorities = certificates.mapValues(\.authorities)
        preflight.checkDisks = checkDisks
        let scripts = preflight.scripts(workspace, hosts: hosts.map(\.name), binaryPaths: sources.map(\.remote),
                                        extraFiles: certificates.values.flatMap(\.files))
        let memberCount = workspace.plan.clusters.reduce(0) { $0 + $1.members.count }
        progress.note("plan: \(workspace.plan.clusters.count) cluster(s), \(memberCount) member(s); connecting to \(hosts.count) host(s)")
        for cluster in workspace.plan.clusters {
            for note in PlanSummary.notes(cluster) { progress.note("cluster \(cluster.name): \(note)") }
        }
        let fleet: Fleet, outputs: [String: String]
        do {
            (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress,
                                                       thenRun: (step: "preflight", script: scripts),
                                                       tolerating: Self.removalOnlyHosts(workspace.plan))
        } catch let error as MusterError where error.step == "connect" {
            _ = try? await binaries
            throw Self.namingDNSServers(in: error, plan: workspace.plan)
        } catch {
            _ = try? await binaries
            throw error
        }
        do {
            // Warned, never refused: etcd runs with skewed clocks, but its leases and its peers'
            // "clock drift" logs do not (the same check and lines as verify's).
            let skew = ClockSkew.check(await ClockSkew.measure(fleet.sessions.keys.sorted(), fleet: fleet))
            if !skew.ok { progress.note("WARN \(skew.name): \(skew.detail)") }
            let facts = try preflight.judge(workspace, outputs: outputs)
            if !dryRun {
                // Kept before anything they name reaches a host.
                if identityIsNew { try workspace.state.save(identity) }
                for name in newIncarnations.sorted() { try workspace.state.saveIncarnation(incarnations[name]!, of: name) }
                for certificate in certificates.values { try certificate.commitAuthorities() }
            }
            // Members to remove that are gone (host unreachable, member stopped) leave first.
            let departed = Self.departed(workspace.plan, fleet: fleet, facts: facts)
            if !departed.isEmpty {
                for cluster in workspace.plan.clusters {
                    for removal in cluster.removals where departed[cluster.name]?.contains(removal.name) == true {
                        let why = removal.member.map { fleet.sessions[$0.host] == nil ? "its host \($0.host) is unreachable" : "it is not running" } ?? ""
                        progress.note("cluster \(cluster.name): \(removal.name) is gone (\(why)): removed first, then any newcomer added (etcd's runtime-reconfiguration guide)")
                    }
                }
                workspace = try workspace.replanned(departed: departed)
            }
            try checkpoint("up.after-preflight")
            var operations = ClusterOperations(fleet: fleet, facts: facts, progress: progress, options: options,
                                               tls: certificates.mapValues(\.tls))
            operations.markerIdentities = Dictionary(uniqueKeysWithValues: workspace.plan.clusters.map {
                ($0.name, MarkerIdentity(incarnation: incarnations[$0.name], state: identity))
            })
            let outcome = try await bringUp(&workspace, operations: operations, binaries: try await binaries,
                                            certificates: certificates, context: context)
            await fleet.close()
            return outcome
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func bringUp(_ workspace: inout Workspace, operations: ClusterOperations, binaries: [Shipment],
                         certificates: [String: ClusterCertificates], context: BootstrapContext) async throws -> Outcome {
        if dryRun {
            // The steps the run would take, from the same facts and the same certificates (issued
            // in memory, never kept by a dry run).
            let runner = StepRunner(command: "up", progress: progress)
            for cluster in workspace.plan.clusters {
                let files = HostFiles.toWrite(for: cluster, in: workspace.plan, extra: certificates[cluster.name]?.files ?? [],
                                              facts: operations.facts)
                runner.list(UpSteps.plan(cluster, conditions: operations.conditions(cluster, files: files), backup: backup))
                if !cluster.removals.isEmpty && !removeMembers {
                    progress.note("dry run: cluster \(cluster.name): removing \(cluster.removals.map(\.name).joined(separator: ", ")) needs --remove-members")
                }
            }
            progress.note("dry run: preflight passed; nothing changed")
            return Outcome(reports: [], changed: false, bytesSent: 0)
        }
        let facts = operations.facts
        // Running members whose conf.yml would change keys etcd ignores stop the run before
        // anything (a binary included) is written anywhere.
        for cluster in workspace.plan.clusters {
            let running = operations.runningMembers(cluster)
            guard !running.isEmpty else { continue }
            let files = HostFiles.toWrite(for: cluster, in: workspace.plan, extra: certificates[cluster.name]?.files ?? [], facts: facts)
            try await operations.refuseIgnoredChanges(cluster, changed: files, running: running)
            let record = try workspace.state.clusterRecord(cluster.name)
            try await operations.refuseUnsafeUpgrade(cluster, stateDirectory: workspace.state.directory) { [workspace] upgrade in
                let from = upgrade.running.map(\.version)
                if from.contains(where: { EtcdUpgradeRules.needsSnapshotIndices(from: $0, to: upgrade.target) }) {
                    upgrade.reached36AtIndex = record?.reached36AtIndex
                    for member in cluster.members {
                        upgrade.newestSnapshotIndex[member.name] = facts[member.host]?.members[cluster.name]?.newestSnapshotIndex
                    }
                }
                if from.contains(where: { EtcdUpgradeRules.needsV2StoreCheck(from: $0, to: upgrade.target) }) {
                    let etcdutl = try await UpgradeTool.etcdutl(workspace, cluster: cluster)
                    upgrade.v2Store = try await operations.checkV2Stores(cluster, etcdutl: etcdutl)
                }
            }
            try await operations.refuseUnsafeMembershipChange(cluster)
            let changing = !files.isEmpty || running.count < cluster.members.count || !cluster.removals.isEmpty
                || cluster.members.contains { $0.join?.isNew == true } || running.contains(where: operations.runsAnotherBinary)
            if changing { try await operations.refuseChangeUnderAlarm(cluster, change: "change it") }
        }
        let ledger = ChangeLedger()
        let preparation = HostPreparation(fleet: operations.fleet, facts: facts, ledger: ledger, progress: progress)
        // etcd itself is on the critical path; etcdctl ships once the first members are starting.
        let tools = binaries.filter { !$0.isMember }
        let memberHosts = Set(workspace.plan.clusters.flatMap { $0.members.map(\.host) })
        try await preparation.deliver(binaries.filter(\.isMember))
        let waves = Self.waves(workspace.plan.clusters)
        // Hosts whose clusters come up in a later wave get the binary now, while the first wave
        // starts, rather than after it.
        let firstWaveHosts = Set(waves.first.map { wave in
            workspace.plan.clusters.filter { wave.contains($0.name) }.flatMap { $0.members.map(\.host) }
        } ?? [])
        for host in memberHosts.subtracting(firstWaveHosts).sorted() {
            await preparation.apply(ApplyScript(), on: host, label: "")
        }
        var changed = false
        do {
            for wave in waves {
                for name in wave {
                    guard let cluster = workspace.plan.cluster(named: name) else { continue }
                    workspace = try await mode(for: cluster).refresh(cluster, in: workspace, context: context, operations: operations)
                }
                let clusters = wave.compactMap(workspace.plan.cluster(named:))
                let waveChanged = try await bringUp(wave: clusters, workspace: workspace, operations: operations,
                                                    certificates: certificates, preparation: preparation, ledger: ledger,
                                                    context: context) {
                    try? await preparation.shipTools(tools)
                }
                changed = changed || waveChanged
                for cluster in clusters { try await mode(for: cluster).afterFormed(cluster, in: &workspace, context: context) }
            }
            try await preparation.shipTools(tools)
            // Verification speaks HTTP to the members; it need not wait for etcdctl on the SSH lanes.
            let reports = try await verifyAll(workspace, operations: operations, ledger: ledger)
            try await preparation.finish()
            try recordFormations(workspace, reports: reports)
            let total = ledger.totalBytes
            if !changed && total == 0 {
                progress.note("nothing to do: every cluster is up with this plan; moved 0 bytes")
            } else {
                progress.note("done: moved \(total) bytes")
            }
            return Outcome(reports: reports, changed: changed || total > 0, bytesSent: total, hosts: ledger.hosts,
                           backups: ledger.backups)
        } catch {
            await preparation.abandon()
            throw error
        }
    }

    /// Hosts that only hold members to remove: a run goes on without them when they cannot be
    /// reached (a move off a host that is down).
    static func removalOnlyHosts(_ plan: Plan) -> Set<String> {
        let needed = Set(plan.clusters.flatMap { $0.members.map(\.host) + ($0.dns.map { [$0.serverHost] } ?? []) })
        return Set(plan.clusters.flatMap { $0.removals.compactMap(\.member?.host) }).subtracting(needed)
    }

    /// By cluster, the members to remove that are gone already: their host did not answer, or
    /// their member does not run there.
    static func departed(_ plan: Plan, fleet: Fleet, facts: [String: HostFacts]) -> [String: Set<String>] {
        var departed: [String: Set<String>] = [:]
        for cluster in plan.clusters {
            for removal in cluster.removals {
                guard let member = removal.member else { continue }
                if fleet.sessions[member.host] == nil || facts[member.host]?.members[cluster.name]?.runningPid == nil {
                    departed[cluster.name, default: []].insert(removal.name)
                }
            }
        }
        return departed
    }

    /// A DNS server that cannot be reached is named as such: without it a DNS SRV cluster's
    /// members cannot find each other, which "connect: ..." alone does not say.
    static func namingDNSServers(in error: MusterError, plan: Plan) -> MusterError {
        let lines = error.message.split(separator: "\n")
        let unreachable = plan.clusters.compactMap { cluster in cluster.dns.map { (cluster: cluster.name, host: $0.serverHost) } }
            .filter { server in error.host == server.host || lines.contains { $0.hasPrefix(server.host + ":") } }
        guard !unreachable.isEmpty else { return error }
        var named = error
        for server in unreachable {
            named.message += "\n\(server.host) is the DNS server of cluster '\(server.cluster)': its dnsmasq serves the SRV records the members find each other by, so the cluster cannot bootstrap without it; nothing was changed on any host"
        }
        return named
    }

    /// Clusters in the order they can come up: each wave holds the clusters whose discovery
    /// backends are up by then. (Cycles were refused when the inventory was checked.)
    static func waves(_ clusters: [ClusterPlan]) -> [[String]] {
        let names = Set(clusters.map(\.name))
        var done = Set<String>(), remaining = clusters, waves: [[String]] = []
        while !remaining.isEmpty {
            let ready = remaining.filter { $0.dependsOn.allSatisfy { done.contains($0) || !names.contains($0) } }
            let wave = ready.isEmpty ? remaining : ready
            waves.append(wave.map(\.name))
            done.formUnion(wave.map(\.name))
            remaining.removeAll { done.contains($0.name) }
        }
        return waves
    }

    /// One wave: files to every host (each as soon as its binary arrived), then each cluster
    /// started and waited for, side by side. Returns whether anything changed.
    private func bringUp(wave clusters: [ClusterPlan], workspace: Workspace, operations: ClusterOperations,
                         certificates: [String: ClusterCertificates], preparation: HostPreparation, ledger: ChangeLedger,
                         context: BootstrapContext, membersStarting: @escaping @Sendable () async -> Void) async throws -> Bool {
        var filesByCluster: [String: [RenderedFile]] = [:]
        for cluster in clusters {
            filesByCluster[cluster.name] = HostFiles.toWrite(for: cluster, in: workspace.plan,
                                                              extra: certificates[cluster.name]?.files ?? [], facts: operations.facts)
        }
        for (host, scripts) in HostFiles.applyScripts(for: clusters, files: filesByCluster, facts: operations.facts) {
            for script in scripts { await preparation.apply(script.script, on: host, label: script.label) }
        }
        try checkpoint("up.during-transfer")
        // etcdctl waits until every member of the wave has started: a host's SSH lane busy with it
        // would hold that host's start back.
        let started = Countdown(clusters.count, then: membersStarting)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for cluster in clusters {
                let files = filesByCluster[cluster.name] ?? []
                let certificates = certificates[cluster.name]
                group.addTask {
                    try await bringUp(cluster: cluster, files: files, workspace: workspace, operations: operations,
                                      certificates: certificates, preparation: preparation, ledger: ledger,
                                      context: context, started: started)
                }
            }
            var changed = false
            for try await clusterChanged in group { changed = changed || clusterChanged }
            for host in Set(clusters.flatMap { $0.members.map(\.host) }) { try await preparation.ready(host) }
            return changed
        }
    }

    /// The cluster's steps (`UpSteps`), run one after the other. Returns whether anything changed.
    private func bringUp(cluster: ClusterPlan, files: [RenderedFile], workspace: Workspace, operations: ClusterOperations,
                         certificates: ClusterCertificates?, preparation: HostPreparation, ledger: ChangeLedger,
                         context: BootstrapContext, started: Countdown) async throws -> Bool {
        // Once the files are on every host of the cluster, the certificates among them become
        // the state's; members start meanwhile, each as soon as its own host is ready.
        async let committed: Void = {
            for host in cluster.hosts { try await preparation.ready(host) }
            try certificates?.commit()
        }()
        let steps = UpSteps.plan(cluster, conditions: operations.conditions(cluster, files: files), backup: backup)
        let executor = UpStepRun(cluster: cluster, steps: steps, workspace: workspace, operations: operations,
                            preparation: preparation, ledger: ledger, context: context, started: started,
                            wipeRemovedData: wipeRemovedData)
        try await StepRunner(command: "up", progress: progress).run(steps, executor.run)
        await executor.startsDone()
        try await committed
        if steps.isEmpty {
            progress.note("cluster \(cluster.name): every member already running with this config; left alone")
        }
        return !steps.isEmpty
    }

    private func verifyAll(_ workspace: Workspace, operations: ClusterOperations, ledger: ChangeLedger) async throws -> [VerificationReport] {
        var expectations: [String: ClusterExpectation] = [:]
        for cluster in workspace.plan.clusters { expectations[cluster.name] = try workspace.expectation(for: cluster) }
        let snapshot = expectations
        let touched = Set(ledger.hosts.map(\.host))
        return try await withThrowingTaskGroup(of: (Int, VerificationReport).self) { group in
            for (index, cluster) in workspace.plan.clusters.enumerated() {
                progress.note("cluster \(cluster.name): verifying")
                group.addTask {
                    // The supervisors' states come over SSH while verification speaks HTTP: side
                    // by side, the SSH round trip adds nothing to the run.
                    let unchanged = cluster.hosts.allSatisfy { !touched.contains($0) }
                    async let supervisors = unchanged ? operations.supervisorStatesFromPreflight(cluster)
                                                      : operations.supervisorStates(cluster)
                    var report = try await operations.verify(cluster, expectation: snapshot[cluster.name])
                    report.supervisors = await supervisors
                    return (index, report)
                }
            }
            var reports: [(Int, VerificationReport)] = []
            for try await report in group { reports.append(report) }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// The first verified run of a cluster records its founding IDs; later runs leave the record.
    private func recordFormations(_ workspace: Workspace, reports: [VerificationReport]) throws {
        for report in reports where report.ok {
            let recordedBefore = try workspace.state.clusterRecord(report.clusterName) != nil
            defer { try? recordReaching36(report, state: workspace.state, foundedNow: !recordedBefore) }
            guard !recordedBefore, let clusterID = report.observedClusterID else { continue }
            // In the plan's order: the order of the founders' initial-cluster.
            let planned = workspace.plan.cluster(named: report.clusterName)?.members ?? []
            let founders = planned.compactMap { member -> ClusterRecord.Member? in
                guard let row = report.members.first(where: { $0.name == member.name }) else { return nil }
                return ClusterRecord.Member(name: member.name, id: EtcdIDs.hex(row.id), peerURLs: row.peerURLs)
            }
            guard founders.count == report.members.count else { continue }
            let state = workspace.state
            try state.records.update(report.clusterName) { record in
                guard record == nil else { return }
                record = ClusterRecord(cluster: report.clusterName, clusterID: EtcdIDs.hex(clusterID), formedAt: Date(),
                                       founders: founders, incarnation: try state.incarnation(of: report.clusterName))
            }
        }
    }

    /// The record keeps the index at which the cluster reached 3.6 once a verification shows it
    /// (`EtcdUpgradeRules.reached36AtIndex`), for the 3.6 -> 3.7 guard.
    private func recordReaching36(_ report: VerificationReport, state: LocalState, foundedNow: Bool) throws {
        guard let index = EtcdUpgradeRules.reached36AtIndex(serverVersions: report.endpoints.map(\.version), clusterVersion: report.clusterVersion,
                                                            raftIndices: report.endpoints.map(\.raftIndex), foundedNow: foundedNow) else { return }
        _ = try state.records.update(report.clusterName) { record in
            guard record != nil, record?.reached36AtIndex == nil else { return }
            record?.reached36AtIndex = index
        }
    }

    // MARK: binaries

    /// Each cluster's etcd (its own `member:`, else the inventory's), and etcdctl when that names
    /// it: local path, remote path, the hosts of the clusters that run it. Clusters on one
    /// version share its remote path (`etcd-VERSION`) and so one binary.
    private func binarySources(_ workspace: Workspace) throws -> [Shipment.Source] {
        var sources: [Shipment.Source] = []
        func add(_ local: String, _ remote: String, _ hosts: [String], isMember: Bool) {
            if let index = sources.firstIndex(where: { $0.remote == remote }) {
                sources[index].hosts.formUnion(hosts)
            } else {
                sources.append(Shipment.Source(local: local, remote: remote, hosts: Set(hosts), isMember: isMember))
            }
        }
        for cluster in workspace.plan.clusters {
            guard let paths = cluster.members.first?.paths else { continue }
            let member = workspace.inventory.memberSettings(of: cluster.name)
            guard FileManager.default.isExecutableFile(atPath: member.binary) else {
                throw InventoryError.at(member.mark, in: builder.inventoryPath, "member.binary \(member.binary) is missing or not executable on the controller")
            }
            add(member.binary, paths.binary, cluster.members.map(\.host), isMember: true)
            guard let etcdctl = member.etcdctl else { continue }
            guard FileManager.default.isExecutableFile(atPath: etcdctl) else {
                throw InventoryError.at(member.mark, in: builder.inventoryPath, "member.etcdctl \(etcdctl) is missing or not executable on the controller (install etcd-client, or leave member.etcdctl out)")
            }
            add(etcdctl, paths.etcdctl, cluster.members.map(\.host), isMember: false)
        }
        return sources
    }

    /// The binaries hashed on a dispatch thread (tens of milliseconds of CPU the cooperative pool
    /// should not block on), with their zstd copies.
    private static func shippedBinaries(_ sources: [Shipment.Source]) async throws -> [Shipment] {
        let hashed = try await offPool { try sources.map { try ShippedBinary(localPath: $0.local, remotePath: $0.remote) } }
        return await withTaskGroup(of: (Int, String?).self) { group in
            for (index, binary) in hashed.enumerated() {
                group.addTask { (index, await BinaryCache.compressedCopy(of: binary)) }
            }
            var result = hashed
            for await (index, path) in group { result[index].compressedPath = path }
            return zip(result, sources).map { Shipment(binary: $0, hosts: $1.hosts, isMember: $1.isMember) }
        }
    }
}

extension MemberPlan {
    var listenPorts: [Int] {
        (listenPeerURLs + listenClientURLs).compactMap { URLComponents(string: $0)?.port }.uniqued()
    }
}

/// Runs an action once `count` parties have arrived.
actor Countdown {
    private var remaining: Int
    private let action: @Sendable () async -> Void

    init(_ count: Int, then action: @escaping @Sendable () async -> Void) {
        remaining = count
        self.action = action
    }

    func arrive() async {
        remaining -= 1
        if remaining == 0 { await action() }
    }
}
