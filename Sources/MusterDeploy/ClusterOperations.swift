import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterSSH

/// The steps every command is made of, over one fleet: start members gated on their peers, wait
/// for health, restart one member at a time, stop, explain a failure, verify. `BringUp` and
/// `TearDown` (and every later operation) are short orchestrations of this value; none of them
/// talks to a host or a member in its own way.
struct ClusterOperations: Sendable {
    let fleet: Fleet
    /// What preflight learnt of each host (empty when a command did not gather facts).
    let facts: [String: HostFacts]
    let progress: Progress
    let options: RunOptions
    /// The client certificate muster speaks TLS with, by cluster.
    let tls: [String: EtcdTLS]
    /// By cluster: what the markers of members this run starts say beyond their IDs (none: the
    /// first line only, as earlier muster versions wrote).
    var markerIdentities: [String: MarkerIdentity] = [:]

    func supervisor(on host: String) -> Supervisor { Supervisor(facts: facts[host]) }

    /// What keeps `member` running now: its host's chosen supervisor, unless the member still
    /// runs under the other one (the inventory's `supervisor:` changed, or the host gained systemd).
    func currentSupervisor(of member: MemberPlan) -> Supervisor {
        facts[member.host]?.members[member.cluster]?.runningVia ?? supervisor(on: member.host)
    }

    /// A running member to move to its host's chosen supervisor, by a restart like any other.
    func runsUnderAnotherSupervisor(_ member: MemberPlan) -> Bool {
        isRunning(member) && currentSupervisor(of: member) != supervisor(on: member.host)
    }

    func isRunning(_ member: MemberPlan) -> Bool {
        facts[member.host]?.members[member.cluster]?.runningPid != nil
    }

    /// A running member whose process is not the plan's binary (a changed `member.binary`):
    /// left alone it would switch at its next crash or reboot, unchecked.
    func runsAnotherBinary(_ member: MemberPlan) -> Bool {
        guard let exe = facts[member.host]?.members[member.cluster]?.runningExe else { return false }
        return exe != member.paths.binary && !exe.hasPrefix(member.paths.binary + " ")
    }

    func runningMembers(_ cluster: ClusterPlan) -> [MemberPlan] {
        cluster.members.filter(isRunning)
    }

    // MARK: start and stop

    /// Starts one member that does not run, gated on its peer port: a member asks its peers for
    /// /members with a 1 s timeout, so starting the next one only once this one listens keeps
    /// peers from stalling each other.
    func start(_ member: MemberPlan) async throws {
        // The marker names the data's identity: written when the member starts without data; a
        // member with data keeps the marker it has (preflight checked it; a restore rewrote it).
        let lines = member.markerLines(markerIdentities[member.cluster]).map(Shell.quote).joined(separator: " ")
        let marker = "{ [ -d \(Shell.quote(member.paths.data + "/member")) ] && [ -s \(Shell.quote(member.paths.marker)) ] || printf '%s\\n' \(lines) > \(Shell.quote(member.paths.marker)); }"
        let output = try await fleet.check(member.host, "start", "\(marker) && \(supervisor(on: member.host).startCommand(member))")
        progress.host(member.host, "start", "\(member.cluster): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        try await waitForPeerPort(member)
    }

    func waitForPeerPort(_ member: MemberPlan) async throws {
        let port = member.listenPorts.first ?? 2380
        let deadline = Deadline(seconds: 5)
        repeat {
            if await PortProbe.isOpen(host: member.address, port: port) { return }
        } while try await deadline.sleep(.milliseconds(20))
        throw await failure(member, step: "start", "peer port \(port) did not open within \(deadline.text)")
    }

    /// Stops one member; with `wipe` its data dir and marker go too (only ever on an explicit
    /// `--wipe-data`). Returns what the host said.
    @discardableResult
    func stop(_ member: MemberPlan, wipe: Bool, disable: Bool = false, deletingKeys: Bool = false) async throws -> String {
        let output = try await fleet.check(member.host, "stop", stopScript(member, wipe: wipe, disable: disable, deletingKeys: deletingKeys),
                                           timeout: 60)
        let said = output.split(separator: "\n").joined(separator: "; ")
        progress.host(member.host, "stop", "\(member.cluster): \(said)")
        return output
    }

    /// What `stop` runs on the member's host.
    func stopScript(_ member: MemberPlan, wipe: Bool, disable: Bool = false, deletingKeys: Bool = false) -> String {
        // Stopped by whoever runs it; a unit left behind by a move away from systemd is disabled,
        // or it would start a second etcd at the next boot.
        let current = currentSupervisor(of: member)
        var script = current.stopCommand(member, disable: disable || (current == .systemd && supervisor(on: member.host) != .systemd))
        if wipe {
            script += "\nrm -rf \(Shell.quote(member.paths.data)) \(Shell.quote(member.paths.marker)) && echo \"data wiped: \(member.paths.data)\""
        } else {
            script += "\necho \"data kept in \(member.paths.data)\""
        }
        if deletingKeys {
            script += "\nrm -f -- " + Self.privateKeys(member.paths).map(Shell.quote).joined(separator: " ")
        }
        return script
    }

    /// Restarts one running member and waits until it is healthy again: called one member at a
    /// time, so the cluster never loses more than one voter to muster. (The boundary before each
    /// is its step's, `up.rolling-restart`.)
    func restart(_ member: MemberPlan, cluster: ClusterPlan, reason: String) async throws {
        progress.host(member.host, "restart", "\(cluster.name): stopping \(member.name) (\(reason))")
        try await stop(member, wipe: false)
        let output = try await fleet.check(member.host, "restart", supervisor(on: member.host).startCommand(member))
        progress.host(member.host, "restart", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines)) (\(reason))")
        try await waitHealthy(ClusterPlan(copying: cluster, members: [member]))
    }

    // MARK: health

    /// Waits (bounded) until every member of `cluster` answers /health.
    func waitHealthy(_ cluster: ClusterPlan, within seconds: TimeInterval = 60) async throws {
        try await withEndpoints(cluster) { endpoints in
            try await poll(cluster, endpoints: endpoints, within: seconds)
        }
    }

    /// The members' client URLs (through tunnels where they serve loopback only), closed on
    /// every path.
    /// `viaSSH`: every member through a tunnel.
    func withEndpoints<T>(_ cluster: ClusterPlan, viaSSH: Bool = false, _ body: (Endpoints) async throws -> T) async throws -> T {
        let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: viaSSH, tls: tls[cluster.name])
        do {
            let value = try await body(endpoints)
            await endpoints.close()
            return value
        } catch {
            await endpoints.close()
            throw error
        }
    }

    private func poll(_ cluster: ClusterPlan, endpoints: Endpoints, within seconds: TimeInterval) async throws {
        let deadline = Deadline(seconds: seconds)
        var unhealthy = cluster.members
        repeat {
            var still: [MemberPlan] = []
            for member in unhealthy {
                let healthy = (try? await endpoints.client(for: member, timeout: 2).health())?.healthy ?? false
                if healthy { progress.host(member.host, "health", "\(cluster.name) healthy") } else { still.append(member) }
            }
            unhealthy = still
            if unhealthy.isEmpty { return }
        } while try await deadline.sleep(.milliseconds(50))
        throw await failure(unhealthy[0], step: "health",
                            "\(unhealthy.map(\.name).joined(separator: ", ")) of cluster '\(cluster.name)' not healthy after \(deadline.text)")
    }

    func verify(_ cluster: ClusterPlan, expectation: ClusterExpectation? = nil) async throws -> VerificationReport {
        try await Verification.verify(cluster, expectation: expectation, fleet: fleet, viaSSH: false, tls: tls[cluster.name])
    }

    // MARK: failure triage

    /// The error for a member that failed, with the last lines of its log (the journal under
    /// systemd) and etcd's known causes.
    func failure(_ member: MemberPlan, step: String, _ message: String) async -> DeployError {
        let (command, source) = supervisor(on: member.host).logCommand(member)
        let log = (try? await fleet.session(member.host).run(command, timeout: 10, privileged: true))?.stdoutText ?? ""
        var text = "cluster '\(member.cluster)': \(message)\nlast lines of \(source):\n\(TerminalText.escaped(log))"
        if let cause = KnownErrors.explain(log) { text += "\ncause: \(cause)" }
        return DeployError(host: member.host, cluster: member.cluster, step: step, text)
    }
}
