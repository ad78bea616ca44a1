import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH

/// `muster up`: preflight every host, push binary and files, register discovery, start members
/// gated on their peers, wait for health, verify.
///
/// Clusters come up in waves: a cluster waits only for the cluster it discovers through; the
/// clusters of one wave start side by side.
public struct BringUp: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    public var dryRun = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public struct Outcome: Sendable {
        public var reports: [VerificationReport]
        public var changed: Bool
        public var bytesSent: Int
    }

    public func run() async throws -> Outcome {
        var built = try builder.build(lock: true)
        defer { built.state.unlock() }
        built = try await askServicesForTokens(built)
        let inventory = built.inventory
        let hostNames = Set(built.plan.clusters.flatMap { cluster in
            cluster.members.map(\.host) + (cluster.dns.map { [$0.serverHost] } ?? [])
        })
        let hosts = inventory.hosts.filter { hostNames.contains($0.name) }
        // Hashing the binaries (and compressing one the cache lacks) overlaps with connecting.
        let sources = try binarySources(built)
        async let binaries = Self.shippedBinaries(sources)
        // Certificates come from muster's local CA before any host is contacted.
        var certificates: [String: ClusterCertificates] = [:]
        for cluster in built.plan.clusters where cluster.tls {
            certificates[cluster.name] = try ClusterCertificates(cluster: cluster, stateDirectory: built.state.directory)
        }
        let preflight = preflightScripts(built, hosts: hosts.map(\.name), binaryPaths: sources.map(\.1),
                                         extraFiles: certificates.values.flatMap(\.files))
        let memberCount = built.plan.clusters.reduce(0) { $0 + $1.members.count }
        progress.note("plan: \(built.plan.clusters.count) cluster(s), \(memberCount) member(s); connecting to \(hosts.count) host(s)")
        let fleet: Fleet, outputs: [String: String]
        do {
            (fleet, outputs) = try await Fleet.connect(hosts, options: options, progress: progress,
                                                       thenRun: (step: "preflight", script: preflight))
        } catch {
            _ = try? await binaries
            throw error
        }
        do {
            let facts = try judgePreflight(built, outputs: outputs)
            let outcome = try await bringUp(built, fleet: fleet, binaries: try await binaries,
                                            certificates: certificates, facts: facts)
            await fleet.close()
            return outcome
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func bringUp(_ initial: PlanBuilder.Result, fleet: Fleet, binaries: [ShippedBinary],
                         certificates: [String: ClusterCertificates], facts: [String: HostFacts]) async throws -> Outcome {
        var built = initial
        if dryRun {
            progress.note("dry run: preflight passed; nothing changed")
            return Outcome(reports: [], changed: false, bytesSent: 0)
        }
        // Running members whose conf.yml would change keys etcd ignores stop the run before
        // anything (a binary included) is written anywhere.
        for cluster in built.plan.clusters {
            let running = runningMembers(cluster, facts)
            guard !running.isEmpty else { continue }
            let files = filesToWrite(for: cluster, in: built.plan, extra: certificates[cluster.name]?.files ?? [], facts: facts)
            try await refuseIgnoredChanges(cluster, changed: files, running: running, fleet: fleet)
        }
        let counter = ByteCounter()
        let preparation = HostPreparation(fleet: fleet, facts: facts, counter: counter, progress: progress)
        // etcd itself is on the critical path; etcdctl ships once the first members are starting.
        let memberBinary = Array(binaries.prefix(1)), tools = Array(binaries.dropFirst())
        let memberHosts = Set(built.plan.clusters.flatMap { $0.members.map(\.host) })
        try await preparation.deliver(memberBinary.first, to: memberHosts)
        let waves = Self.waves(built.plan.clusters)
        // Hosts whose clusters come up in a later wave get the binary now, while the first wave
        // starts, rather than after it.
        let firstWaveHosts = Set(waves.first.map { wave in
            built.plan.clusters.filter { wave.contains($0.name) }.flatMap { $0.members.map(\.host) }
        } ?? [])
        for host in memberHosts.subtracting(firstWaveHosts).sorted() {
            await preparation.apply(ApplyScript(), on: host, label: "")
        }
        var changed = false
        do {
            for wave in waves {
                for name in wave { built = try await refreshDiscoveryToken(for: name, built, facts: facts) }
                let clusters = wave.compactMap(built.plan.cluster(named:))
                let waveChanged = try await bringUp(wave: clusters, plan: built.plan, inventory: built.inventory, facts: facts,
                                                    certificates: certificates, preparation: preparation, fleet: fleet) {
                    try? await preparation.shipTools(tools, to: memberHosts)
                }
                changed = changed || waveChanged
                for cluster in clusters { try markFormed(cluster, state: built.state) }
            }
            try await preparation.shipTools(tools, to: memberHosts)
            // Verification speaks HTTP to the members; it need not wait for etcdctl on the SSH lanes.
            let reports = try await verifyAll(built.plan, fleet: fleet, certificates: certificates)
            try await preparation.finish()
            if !changed && counter.total == 0 {
                progress.note("nothing to do: every cluster is up with this plan; moved 0 bytes")
            } else {
                progress.note("done: moved \(counter.total) bytes")
            }
            return Outcome(reports: reports, changed: changed || counter.total > 0, bytesSent: counter.total)
        } catch {
            await preparation.abandon()
            throw error
        }
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
    private func bringUp(wave clusters: [ClusterPlan], plan: Plan, inventory: Inventory, facts: [String: HostFacts],
                         certificates: [String: ClusterCertificates], preparation: HostPreparation,
                         fleet: Fleet, membersStarting: @escaping @Sendable () async -> Void) async throws -> Bool {
        var filesByCluster: [String: [RenderedFile]] = [:]
        for cluster in clusters {
            filesByCluster[cluster.name] = filesToWrite(for: cluster, in: plan, extra: certificates[cluster.name]?.files ?? [], facts: facts)
        }
        for (host, scripts) in applyScripts(for: clusters, files: filesByCluster, facts: facts) {
            for script in scripts { await preparation.apply(script.script, on: host, label: script.label) }
        }
        // dnsmasq on a shared server is configured one cluster at a time.
        for cluster in clusters where runningMembers(cluster, facts).count < cluster.members.count {
            guard let dns = cluster.dns else { continue }
            for host in Set(cluster.members.map(\.host) + [dns.serverHost]) { try await preparation.ready(host) }
            try await serveDNS(dns, cluster: cluster, fleet: fleet, inventory: inventory)
        }
        // etcdctl waits until every member of the wave has started: a host's SSH lane busy with it
        // would hold that host's start back.
        let started = Countdown(clusters.count, then: membersStarting)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for cluster in clusters {
                let files = filesByCluster[cluster.name] ?? []
                let tls = certificates[cluster.name]?.tls
                group.addTask {
                    try await bringUp(cluster: cluster, files: files, facts: facts, tls: tls,
                                      preparation: preparation, fleet: fleet, started: started)
                }
            }
            var changed = false
            for try await clusterChanged in group { changed = changed || clusterChanged }
            for host in Set(clusters.flatMap { $0.members.map(\.host) }) { try await preparation.ready(host) }
            return changed
        }
    }

    /// Starts what is not running and restarts running members whose files changed. Returns
    /// whether anything changed.
    private func bringUp(cluster: ClusterPlan, files: [RenderedFile], facts: [String: HostFacts], tls: EtcdTLS?,
                         preparation: HostPreparation, fleet: Fleet, started: Countdown) async throws -> Bool {
        let running = runningMembers(cluster, facts)
        // A changed config or new certificates reach running members by a restart, one member
        // at a time, each healthy again before the next.
        let restart = running.filter { member in
            files.contains { $0.host == member.host && ($0.path == member.paths.config || $0.path.hasPrefix(member.paths.pkiDir + "/")) }
        }
        for member in restart { try await preparation.ready(member.host) }
        if !restart.isEmpty { try await rollingRestart(restart, cluster: cluster, fleet: fleet, tls: tls) }
        if running.count == cluster.members.count {
            await started.arrive()
            if restart.isEmpty { progress.note("cluster \(cluster.name): every member already running with this config; left alone") }
            return !restart.isEmpty
        }
        try await registerDiscovery(cluster)
        try await start(cluster, fleet: fleet, facts: facts, preparation: preparation)
        await started.arrive()
        try await waitHealthy(cluster, fleet: fleet, tls: tls)
        return true
    }

    private func runningMembers(_ cluster: ClusterPlan, _ facts: [String: HostFacts]) -> [MemberPlan] {
        cluster.members.filter { facts[$0.host]?.members[cluster.name]?.runningPid != nil }
    }

    private func verifyAll(_ plan: Plan, fleet: Fleet, certificates: [String: ClusterCertificates]) async throws -> [VerificationReport] {
        try await withThrowingTaskGroup(of: (Int, VerificationReport).self) { group in
            for (index, cluster) in plan.clusters.enumerated() {
                let tls = certificates[cluster.name]?.tls
                progress.note("cluster \(cluster.name): verifying")
                group.addTask { (index, try await Verification.verify(cluster, fleet: fleet, viaSSH: false, tls: tls)) }
            }
            var reports: [(Int, VerificationReport)] = []
            for try await report in group { reports.append(report) }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    // MARK: binaries and files

    /// etcd, and etcdctl when the inventory names it, as (local path, remote path).
    private func binarySources(_ built: PlanBuilder.Result) throws -> [(String, String)] {
        guard let paths = built.plan.clusters.first?.members.first?.paths else { return [] }
        let member = built.inventory.member
        guard let etcdctl = member.etcdctl else { return [(member.binary, paths.binary)] }
        guard FileManager.default.isExecutableFile(atPath: etcdctl) else {
            throw DeployError(host: nil, step: "inventory", "\(builder.inventoryPath):\(member.mark): member.etcdctl \(etcdctl) is missing or not executable on the controller (install etcd-client, or leave member.etcdctl out)")
        }
        return [(member.binary, paths.binary), (etcdctl, paths.etcdctl)]
    }

    /// The binaries hashed on a dispatch thread (tens of milliseconds of CPU the cooperative pool
    /// should not block on), with their zstd copies.
    private static func shippedBinaries(_ sources: [(String, String)]) async throws -> [ShippedBinary] {
        let hashed = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[ShippedBinary], Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try sources.map { try ShippedBinary(localPath: $0.0, remotePath: $0.1) } })
            }
        }
        return await withTaskGroup(of: (Int, String?).self) { group in
            for (index, binary) in hashed.enumerated() {
                group.addTask { (index, await BinaryCache.compressedCopy(of: binary)) }
            }
            var result = hashed
            for await (index, path) in group { result[index].compressedPath = path }
            return result
        }
    }

    /// The cluster's files (and its dnsmasq conf) that differ from what the hosts hold.
    private func filesToWrite(for cluster: ClusterPlan, in plan: Plan, extra: [RenderedFile],
                              facts: [String: HostFacts]) -> [RenderedFile] {
        (plan.files + extra).filter { file in
            let belongs = cluster.members.contains { $0.host == file.host && (file.path.hasPrefix($0.paths.configDir + "/") || file.path == $0.paths.unit) }
                || (file.host == cluster.dns?.serverHost && file.path == cluster.dns?.configPath)
            guard belongs, let hostFacts = facts[file.host] else { return belongs }
            return !file.isCurrent(on: hostFacts)
        }
    }

    /// One command per host for the wave: the etcd user and directories where missing, and the
    /// changed files. Hosts already in shape get an empty script (and no channel, unless a
    /// binary waits to be placed).
    private func applyScripts(for clusters: [ClusterPlan], files: [String: [RenderedFile]],
                              facts: [String: HostFacts]) -> [(String, [(script: ApplyScript, label: String)])] {
        var scripts: [String: [ApplyScript]] = [:]
        var involved: [String: [String]] = [:]  // host -> clusters, in wave order
        var written: [String: [String: Int]] = [:]
        func involve(_ host: String, _ cluster: String) {
            if involved[host]?.contains(cluster) != true { involved[host, default: []].append(cluster) }
        }
        for cluster in clusters {
            for member in cluster.members {
                var list = scripts[member.host] ?? [ApplyScript()]
                let hostFacts = facts[member.host]
                if hostFacts?.hasEtcdUser != true, !list.contains(where: \.ensuresEtcdUser) {
                    list[list.count - 1].ensureEtcdUser(home: member.paths.data)
                }
                let needed = [member.paths.configDir, member.paths.data, member.paths.runDir, member.paths.logDir]
                if !needed.allSatisfy({ hostFacts?.existingDirectories.contains($0) == true }) { list[list.count - 1].ensureDirectories(member) }
                scripts[member.host] = list
                involve(member.host, cluster.name)
            }
            for file in files[cluster.name] ?? [] {
                var list = scripts[file.host] ?? [ApplyScript()]
                // A script is one argument of `sh -c`: many TLS clusters on one host get several.
                if list[list.count - 1].approximateLength + file.contents.utf8.count * 2 > ApplyScript.lengthLimit,
                   !list[list.count - 1].isEmpty {
                    list.append(ApplyScript())
                }
                list[list.count - 1].write(file)
                scripts[file.host] = list
                written[file.host, default: [:]][cluster.name, default: 0] += 1
                involve(file.host, cluster.name)
            }
        }
        return scripts.keys.sorted().map { host in
            let label = (involved[host] ?? []).map { name in
                written[host]?[name].map { "\(name): \($0) written" } ?? "\(name): unchanged"
            }.joined(separator: ", ")
            let parts = scripts[host] ?? [ApplyScript()]
            return (host, parts.enumerated().map { index, script in
                (script, parts.count == 1 ? label : "\(label) (part \(index + 1) of \(parts.count))")
            })
        }
    }
}

extension MemberPlan {
    var listenPorts: [Int] {
        (listenPeerURLs + listenClientURLs).compactMap { URLComponents(string: $0)?.port }.uniqued()
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

func hostOfURL(_ url: String) -> String {
    URLComponents(string: url)?.host ?? url
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

/// Bytes sent by uploads across hosts.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = 0
    func add(_ bytes: Int) { lock.lock(); sum += bytes; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return sum }
}

