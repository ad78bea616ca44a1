import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH

/// `muster up`: preflight every host, push binary and files, register discovery, start members
/// gated on their peers, wait for health, verify.
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
        let fleet = try await Fleet.connect(hosts, options: options, progress: progress)
        do {
            let outcome = try await bringUp(built, fleet: fleet)
            await fleet.close()
            return outcome
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func bringUp(_ initial: PlanBuilder.Result, fleet: Fleet) async throws -> Outcome {
        var built = initial
        let binaries = try shippedBinaries(built)
        // Certificates come from muster's local CA before any host is contacted.
        var certificates: [String: ClusterCertificates] = [:]
        for cluster in built.plan.clusters where cluster.tls {
            certificates[cluster.name] = try ClusterCertificates(cluster: cluster, stateDirectory: built.state.directory)
        }
        let certificateFiles = certificates.values.flatMap(\.files)
        let facts = try await preflight(built, fleet: fleet, binaries: binaries, extraFiles: certificateFiles)
        if dryRun {
            progress.note("dry run: preflight passed; nothing changed")
            return Outcome(reports: [], changed: false, bytesSent: 0)
        }
        let counter = ByteCounter()
        var changed = false
        // The binary goes out to every host that lacks it while nothing else needs the lanes.
        // etcd itself is on the critical path; etcdctl ships while the members elect a leader.
        let memberBinary = Array(binaries.prefix(1)), tools = Array(binaries.dropFirst())
        var staged = try await stageBinaries(memberBinary, to: memberHosts(built.plan), fleet: fleet, facts: facts, counter: counter)
        var toolsShipping: Task<Void, Error>?
        defer { toolsShipping?.cancel() }
        for name in built.plan.clusters.map(\.name) {
            built = try await refreshDiscoveryToken(for: name, built, facts: facts)
            guard let cluster = built.plan.cluster(named: name) else { continue }
            let running = cluster.members.filter { facts[$0.host]?.members[cluster.name]?.runningPid != nil }
            let tls = certificates[name]
            let files = filesToWrite(for: cluster, in: built.plan, extra: tls?.files ?? [], facts: facts)
            try await refuseIgnoredChanges(cluster, changed: files, running: running, fleet: fleet)
            let applied = try await apply(cluster, files: files, staged: staged, facts: facts, fleet: fleet, counter: counter)
            staged = staged.filter { !applied.contains($0.key.host) }
            // A changed config or new certificates reach running members by a restart, one
            // member at a time, each healthy again before the next.
            let restart = running.filter { member in
                files.contains { $0.host == member.host && ($0.path == member.paths.config || $0.path.hasPrefix(member.paths.pkiDir + "/")) }
            }
            if running.count == cluster.members.count {
                if !restart.isEmpty {
                    changed = true
                    try await rollingRestart(restart, cluster: cluster, fleet: fleet, tls: tls?.tls)
                } else {
                    progress.note("cluster \(cluster.name): every member already running with this config; left alone")
                }
                continue
            }
            if !restart.isEmpty { try await rollingRestart(restart, cluster: cluster, fleet: fleet, tls: tls?.tls) }
            changed = true
            if let dns = cluster.dns { try await serveDNS(dns, cluster: cluster, fleet: fleet, inventory: built.inventory) }
            try await registerDiscovery(cluster)
            try await start(cluster, fleet: fleet, facts: facts)
            if toolsShipping == nil { toolsShipping = shipTools(tools, to: memberHosts(built.plan), fleet: fleet, facts: facts, counter: counter) }
            try await waitHealthy(cluster, fleet: fleet, tls: tls?.tls)
            try markFormed(cluster, state: built.state)
        }
        if toolsShipping == nil { toolsShipping = shipTools(tools, to: memberHosts(built.plan), fleet: fleet, facts: facts, counter: counter) }
        // Verification speaks HTTP to the members; it need not wait for etcdctl on the SSH lanes.
        var reports: [VerificationReport] = []
        for cluster in built.plan.clusters {
            progress.note("cluster \(cluster.name): verifying")
            reports.append(try await Verification.verify(cluster, fleet: fleet, viaSSH: false, tls: certificates[cluster.name]?.tls))
        }
        try await toolsShipping?.value
        if !changed && counter.total == 0 {
            progress.note("nothing to do: every cluster is up with this plan; moved 0 bytes")
        } else {
            progress.note("done: moved \(counter.total) bytes")
        }
        return Outcome(reports: reports, changed: changed || counter.total > 0, bytesSent: counter.total)
    }

    // MARK: binaries and files

    struct StagedKey: Hashable, Sendable { var host: String; var remotePath: String }

    private func shippedBinaries(_ built: PlanBuilder.Result) throws -> [ShippedBinary] {
        guard let paths = built.plan.clusters.first?.members.first?.paths else { return [] }
        let member = built.inventory.member
        var binaries = [try ShippedBinary(localPath: member.binary, remotePath: paths.binary)]
        let etcdctl = member.etcdctl ?? (member.binary as NSString).deletingLastPathComponent + "/etcdctl"
        if FileManager.default.isExecutableFile(atPath: etcdctl) {
            binaries.append(try ShippedBinary(localPath: etcdctl, remotePath: paths.etcdctl))
        }
        return binaries
    }

    /// Sends each binary a host lacks to /tmp over SFTP; returns where each one waits.
    private func stageBinaries(_ binaries: [ShippedBinary], to memberHosts: Set<String>, fleet: Fleet,
                               facts: [String: HostFacts], counter: ByteCounter) async throws -> [StagedKey: String] {
        return try await withThrowingTaskGroup(of: [StagedKey: String].self) { group in
            for host in memberHosts {
                let missing = binaries.filter { binary in facts[host].map { !binary.isCurrent(on: $0) } ?? true }
                guard !missing.isEmpty else {
                    progress.host(host, "binary", "unchanged")
                    continue
                }
                let progress = progress
                group.addTask {
                    var staged: [StagedKey: String] = [:]
                    for binary in missing {
                        // SFTP to /tmp (it exists everywhere), placed by the apply command. libssh2's
                        // pipelined SFTP writes beat both streaming through a command's stdin and
                        // gzip (measured: the hosts' CPU is the controller's too).
                        let temporary = "/tmp/muster-\((binary.remotePath as NSString).lastPathComponent).\(UInt32.random(in: 0...UInt32.max))"
                        let sent = try await fleet.session(host).send(from: binary.localPath, to: temporary)
                        counter.add(sent)
                        staged[StagedKey(host: host, remotePath: binary.remotePath)] = temporary
                    }
                    progress.host(host, "binary", "sent \(missing.map { ($0.remotePath as NSString).lastPathComponent }.joined(separator: ", ")) (\(missing.reduce(0) { $0 + $1.size } / 1024) KiB)")
                    return staged
                }
            }
            var all: [StagedKey: String] = [:]
            for try await staged in group { all.merge(staged) { $1 } }
            return all
        }
    }

    /// etcdctl for operators on every member host, staged and placed off the critical path.
    private func memberHosts(_ plan: Plan) -> Set<String> {
        Set(plan.clusters.flatMap { $0.members.map(\.host) })
    }

    private func shipTools(_ tools: [ShippedBinary], to hosts: Set<String>, fleet: Fleet,
                           facts: [String: HostFacts], counter: ByteCounter) -> Task<Void, Error>? {
        guard !tools.isEmpty else { return nil }
        let this = self
        return Task {
            let staged = try await this.stageBinaries(tools, to: hosts, fleet: fleet, facts: facts, counter: counter)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for host in Set(staged.keys.map(\.host)) {
                    var script = ApplyScript()
                    for (key, temporary) in staged where key.host == host { script.place(staged: temporary, at: key.remotePath) }
                    group.addTask { try await fleet.check(host, "tools", script.text, timeout: 60) }
                }
                try await group.waitForAll()
            }
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

    /// One command per host that needs anything; hosts already in shape get no channel at all.
    /// Returns the hosts whose staged binaries were placed.
    private func apply(_ cluster: ClusterPlan, files: [RenderedFile], staged: [StagedKey: String],
                       facts: [String: HostFacts], fleet: Fleet, counter: ByteCounter) async throws -> Set<String> {
        var scripts: [String: ApplyScript] = [:]
        for member in cluster.members {
            var script = ApplyScript()
            let hostFacts = facts[member.host]
            if hostFacts?.hasEtcdUser != true { script.ensureEtcdUser(home: member.paths.data) }
            let needed = [member.paths.configDir, member.paths.data, member.paths.runDir, member.paths.logDir]
            if !needed.allSatisfy({ hostFacts?.existingDirectories.contains($0) == true }) { script.ensureDirectories(member) }
            for (key, temporary) in staged where key.host == member.host {
                script.place(staged: temporary, at: key.remotePath)
            }
            for file in files where file.host == member.host { script.write(file) }
            scripts[member.host] = script
        }
        for file in files where scripts[file.host] == nil {
            var script = ApplyScript()
            script.write(file)
            scripts[file.host] = script
        }
        return try await withThrowingTaskGroup(of: String?.self) { group in
            for (host, script) in scripts {
                let written = files.filter { $0.host == host }.count
                guard !script.isEmpty else {
                    progress.host(host, "files", "\(cluster.name): unchanged")
                    continue
                }
                let progress = progress
                group.addTask {
                    try await fleet.check(host, "apply", script.text, timeout: 60)
                    counter.add(script.bytes)
                    progress.host(host, "files", "\(cluster.name): \(written) written")
                    return host
                }
            }
            var hosts = Set<String>()
            for try await host in group { if let host { hosts.insert(host) } }
            return hosts
        }
    }

    // MARK: preflight

    private func preflight(_ built: PlanBuilder.Result, fleet: Fleet, binaries: [ShippedBinary],
                           extraFiles: [RenderedFile]) async throws -> [String: HostFacts] {
        let plan = built.plan
        let hostNames = fleet.sessions.keys.sorted()
        let gathered = try await withThrowingTaskGroup(of: (String, HostFacts).self) { group in
            for host in hostNames {
                let members = plan.clusters.flatMap { $0.members.filter { $0.host == host } }
                let files = (plan.files + extraFiles).filter { $0.host == host }.map(\.path) + (members.isEmpty ? [] : binaries.map(\.remotePath))
                let directories = members.flatMap { [$0.paths.configDir, $0.paths.data, $0.paths.runDir, $0.paths.logDir] }
                group.addTask {
                    let output = try await fleet.check(host, "preflight", HostFacts.script(for: members, files: files, directories: directories), timeout: 30)
                    return (host, HostFacts.parse(output))
                }
            }
            var all: [String: HostFacts] = [:]
            for try await (host, facts) in group { all[host] = facts }
            return all
        }
        var problems: [String] = []
        let localArch = try LocalProcess.run(["uname", "-m"]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        for host in hostNames {
            guard let facts = gathered[host] else { continue }
            if facts.architecture != localArch {
                problems.append("\(host): architecture \(facts.architecture) does not fit the member binary (\(localArch))")
            }
            if facts.freeKilobytes < 200_000 {
                problems.append("\(host): only \(facts.freeKilobytes / 1024) MiB free on /")
            }
        }
        for cluster in plan.clusters {
            for member in cluster.members {
                guard let facts = gathered[member.host] else { continue }
                let mine = facts.members[cluster.name] ?? HostFacts.MemberFacts(hasData: false)
                if mine.hasData, let marker = mine.marker, marker != member.marker,
                   marker.hasPrefix("\(cluster.name) \(member.name) ") {
                    problems.append("\(member.host): member \(member.name) of cluster '\(cluster.name)' was bootstrapped as \(marker.split(separator: " ").last ?? ""), the plan now makes it \(member.memberID.map(EtcdIDs.hex) ?? "unknown"): its token, peer URLs or bootstrap changed, which etcd ignores once it has data. Rebuild it (`muster down --wipe-data`, its keys are lost) or reconfigure by hand (etcdctl member update/add/remove)")
                } else if mine.hasData, mine.marker != member.marker {
                    let whose = mine.marker.map { "member '\($0)'" } ?? "something muster did not start"
                    problems.append("\(member.host): data dir \(member.paths.data) holds data of \(whose), not of member \(member.marker); move it away (muster never deletes etcd data without --wipe-data on down)")
                }
                if mine.runningPid == nil {
                    for port in member.listenPorts where facts.listeningPorts.contains(port) {
                        problems.append("\(member.host): port \(port) for cluster '\(cluster.name)' is already taken by another process")
                    }
                }
            }
            if let dns = cluster.dns, gathered[dns.serverHost]?.hasDnsmasq != true {
                problems.append("\(dns.serverHost): dnsmasq is not installed (needed to serve DNS SRV for cluster '\(cluster.name)')")
            }
        }
        for host in hostNames { progress.host(host, "preflight", problems.contains { $0.hasPrefix("\(host):") } ? "FAILED" : "ok") }
        if !problems.isEmpty {
            throw DeployError(host: nil, step: "preflight", "nothing was changed on any host:\n  " + problems.joined(separator: "\n  "))
        }
        return gathered
    }

    // MARK: discovery

    /// A service backend hands out the token URL: ask it once and record it before planning.
    private func askServicesForTokens(_ built: PlanBuilder.Result) async throws -> PlanBuilder.Result {
        var tokens = try built.state.discoveryTokens()
        var asked = false
        for cluster in built.plan.clusters {
            guard let discovery = cluster.discovery, discovery.isPlaceholder, let service = discovery.serviceURL else { continue }
            try options.addressGuard(hostOfURL(service))
            let url = try await DiscoveryService.newToken(serviceURL: service, size: discovery.size)
            progress.note("cluster \(cluster.name): discovery service gave \(url)")
            tokens[cluster.name] = DiscoveryToken(token: String(url.split(separator: "/").last ?? ""), serviceURL: url)
            asked = true
        }
        guard asked else { return built }
        try built.state.saveDiscoveryTokens(tokens)
        built.state.unlock()
        return try builder.build(lock: true)
    }

    /// A token that already holds members of a cluster that never formed is spent: make a new one.
    private func refreshDiscoveryToken(for name: String, _ built: PlanBuilder.Result,
                                       facts: [String: HostFacts]) async throws -> PlanBuilder.Result {
        guard let cluster = built.plan.cluster(named: name), let discovery = cluster.discovery,
              !discovery.isPlaceholder else { return built }
        var tokens = try built.state.discoveryTokens()
        if tokens[name]?.formed == true { return built }
        if cluster.members.contains(where: { facts[$0.host]?.members[name]?.hasData == true }) { return built }
        try options.addressGuard(hostOfURL(discovery.url))
        let registered = try await V2Keys.registeredMembers(discoveryURL: discovery.url)
        guard !registered.isEmpty else { return built }
        progress.note("cluster \(name): token \(discovery.token) already holds \(registered.count) member(s); making a fresh one")
        if let service = discovery.serviceURL {
            // A service token is spent the same way; the service hands out the next one.
            let url = try await DiscoveryService.newToken(serviceURL: service, size: discovery.size)
            tokens[name] = DiscoveryToken(token: String(url.split(separator: "/").last ?? ""), serviceURL: url)
        } else {
            tokens[name] = DiscoveryToken(token: LocalState.newToken())
        }
        try built.state.saveDiscoveryTokens(tokens)
        built.state.unlock()
        return try builder.build(lock: true)
    }

    private func registerDiscovery(_ cluster: ClusterPlan) async throws {
        guard let discovery = cluster.discovery, let sizeKey = discovery.sizeKeyURL else { return }
        let base = String(sizeKey.dropLast("/_config/size".count))
        try options.addressGuard(hostOfURL(base))
        do {
            try await V2Keys.setDiscoverySize(baseURL: base, size: discovery.size)
        } catch {
            throw DeployError(host: nil, step: "discovery", "cannot set the size of token \(discovery.token) at \(sizeKey): \(error) (the backend needs enable-v2: true)")
        }
        progress.note("cluster \(cluster.name): discovery size \(discovery.size) registered at \(sizeKey)")
    }

    private func markFormed(_ cluster: ClusterPlan, state: LocalState) throws {
        guard cluster.discovery != nil else { return }
        var tokens = try state.discoveryTokens()
        tokens[cluster.name]?.formed = true
        try state.saveDiscoveryTokens(tokens)
    }

    // MARK: push

    /// etcd ignores name, initial cluster, token, bootstrap mode and peer URLs once it has data;
    /// keeping a running member on an old file while claiming success would be a lie.
    private func refuseIgnoredChanges(_ cluster: ClusterPlan, changed files: [RenderedFile], running: [MemberPlan],
                                      fleet: Fleet) async throws {
        for member in running {
            guard let file = files.first(where: { $0.host == member.host && $0.path == member.paths.config }) else { continue }
            let current = try await fleet.check(member.host, "config", "cat \(Shell.quote(member.paths.config))")
            let ignored = ConfigChange.keysEtcdIgnores(from: current, to: file.contents)
            guard ignored.isEmpty else {
                throw DeployError(host: member.host, step: "config",
                                  "conf.yml of running member \(member.name) of cluster '\(cluster.name)' changes \(ignored.joined(separator: ", ")), which etcd ignores once a member has data; nothing was written. To really change them the cluster must be rebuilt (`muster down --wipe-data`, then `up`: its keys are lost) or reconfigured by hand (etcdctl member update/add/remove)")
            }
        }
    }

    // MARK: DNS

    private func serveDNS(_ dns: DNSPlan, cluster: ClusterPlan, fleet: Fleet, inventory: Inventory) async throws {
        let pidfile = "/run/etcd/dnsmasq-\(cluster.name).pid"
        let script = """
        mkdir -p /run/etcd
        if [ -d /run/systemd/system ] && systemctl is-active -q dnsmasq 2>/dev/null; then
            systemctl restart dnsmasq
        else
            if [ -s \(Shell.quote(pidfile)) ]; then kill "$(cat \(Shell.quote(pidfile)))" 2>/dev/null; sleep 0.2; fi
            dnsmasq --conf-file=\(Shell.quote(dns.configPath)) --pid-file=\(Shell.quote(pidfile)) --listen-address=\(Shell.quote(dns.serverAddress)) --bind-interfaces --no-resolv --no-hosts --user=root
        fi
        """
        try await fleet.check(dns.serverHost, "dns", script)
        progress.host(dns.serverHost, "dns", "dnsmasq serving \(dns.configPath)")
        let configure = inventory.dns?.configureResolvers == true
        let names = dns.hostRecords.map(\.fqdn)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for host in Set(cluster.members.map(\.host)) {
                group.addTask {
                    var script = ""
                    if configure {
                        script += """
                        if ! grep -m1 '^nameserver' /etc/resolv.conf | grep -qx 'nameserver \(dns.serverAddress)'; then
                            [ -f /etc/resolv.conf.muster-backup ] || cp /etc/resolv.conf /etc/resolv.conf.muster-backup
                            { echo 'nameserver \(dns.serverAddress)'; grep -v '^nameserver \(dns.serverAddress)$' /etc/resolv.conf.muster-backup; } > /etc/resolv.conf.muster-new
                            cat /etc/resolv.conf.muster-new > /etc/resolv.conf && rm -f /etc/resolv.conf.muster-new
                        fi

                        """
                    }
                    // What etcd will see: every name through this host's own resolver.
                    script += "for n in \(Shell.join(names)); do echo \"$n $(getent ahostsv4 \"$n\" | awk 'NR==1 {print $1}')\"; done"
                    let output = try await fleet.check(host, "dns", script, timeout: 30)
                    let resolved = Dictionary(output.split(separator: "\n").map { line -> (String, String) in
                        let parts = line.split(separator: " ").map(String.init)
                        return (parts.first ?? "", parts.count > 1 ? parts[1] : "")
                    }, uniquingKeysWith: { first, _ in first })
                    for record in dns.hostRecords where resolved[record.fqdn] != record.address {
                        throw DeployError(host: host, step: "dns",
                                          "\(record.fqdn) resolves to '\(resolved[record.fqdn] ?? "")', not \(record.address): this host's resolver must use the dnsmasq on \(dns.serverHost) (\(dns.serverAddress)); set dns.configure_resolvers: true to let muster put it first in /etc/resolv.conf")
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.note("cluster \(cluster.name): every member resolves \(names.count) names through \(dns.serverHost)")
    }

    // MARK: start and wait

    private func start(_ cluster: ClusterPlan, fleet: Fleet, facts: [String: HostFacts]) async throws {
        for member in cluster.members {
            if facts[member.host]?.members[cluster.name]?.runningPid != nil {
                progress.host(member.host, "start", "\(cluster.name) already running")
                continue
            }
            let p = member.paths
            let command: String
            if facts[member.host]?.hasSystemd == true {
                let unit = "etcd-\(cluster.name)"
                command = "systemctl daemon-reload && systemctl enable -q \(Shell.quote(unit)) && systemctl start --no-block \(Shell.quote(unit))"
            } else {
                command = "sh \(Shell.quote(p.startScript))"
            }
            let marker = "echo \(Shell.quote(member.marker)) > \(Shell.quote(p.configDir + "/member.id"))"
            let output = try await fleet.check(member.host, "start", "\(marker) && \(command)")
            progress.host(member.host, "start", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
            // A member asks its peers for /members with a 1 s timeout: starting the next one only
            // once this one listens keeps peers from stalling each other.
            try await waitForPort(member, fleet: fleet)
        }
    }

    private func waitForPort(_ member: MemberPlan, fleet: Fleet) async throws {
        let port = member.listenPorts.first ?? 2380
        for _ in 0..<100 {
            if PortProbe.isOpen(host: member.address, port: port) { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw await failure(member, fleet: fleet, step: "start", "peer port \(port) did not open within 5 s")
    }

    /// Restarts running members one at a time, each healthy again before the next.
    private func rollingRestart(_ members: [MemberPlan], cluster: ClusterPlan, fleet: Fleet, tls: EtcdTLS?) async throws {
        for member in members {
            let stop = TearDown.stopScript(member, wipe: false)
            try await fleet.check(member.host, "restart", stop, timeout: 60)
            let output = try await fleet.check(member.host, "restart", "sh \(Shell.quote(member.paths.startScript))")
            progress.host(member.host, "restart", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines)) (new certificates)")
            try await waitHealthy(ClusterPlan(copying: cluster, members: [member]), fleet: fleet, tls: tls)
        }
    }

    private func waitHealthy(_ cluster: ClusterPlan, fleet: Fleet, tls: EtcdTLS?) async throws {
        let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: false, tls: tls)
        do {
            try await poll(cluster, endpoints: endpoints, fleet: fleet)
            await endpoints.close()
        } catch {
            await endpoints.close()
            throw error
        }
    }

    private func poll(_ cluster: ClusterPlan, endpoints: Endpoints, fleet: Fleet) async throws {
        let deadline = Date().addingTimeInterval(60)
        var unhealthy = cluster.members
        while Date() < deadline {
            var still: [MemberPlan] = []
            for member in unhealthy {
                let healthy = (try? await endpoints.client(for: member, timeout: 2).health())?.healthy ?? false
                if healthy { progress.host(member.host, "health", "\(cluster.name) healthy") } else { still.append(member) }
            }
            unhealthy = still
            if unhealthy.isEmpty { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw await failure(unhealthy[0], fleet: fleet, step: "health",
                            "\(unhealthy.map(\.name).joined(separator: ", ")) not healthy after 60 s")
    }

    /// The error for a member that failed, with the last lines of its log and etcd's known causes.
    private func failure(_ member: MemberPlan, fleet: Fleet, step: String, _ message: String) async -> DeployError {
        let log = (try? await fleet.session(member.host).run("tail -n 25 \(Shell.quote(member.paths.log))", timeout: 10, privileged: true))?.stdoutText ?? ""
        var text = "\(message)\nlast lines of \(member.paths.log):\n\(log)"
        if let cause = KnownErrors.explain(log) { text += "\ncause: \(cause)" }
        return DeployError(host: member.host, step: step, text)
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

/// Bytes sent by uploads across hosts.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = 0
    func add(_ bytes: Int) { lock.lock(); sum += bytes; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return sum }
}

