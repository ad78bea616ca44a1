import Foundation
import MusterBasics
import MusterPlan

/// `muster down`: stops members and muster's dnsmasq; etcd data stays unless `wipeData`.
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
        let built = try builder.build(lock: true)
        defer { built.state.unlock() }
        let hostNames = Set(built.plan.clusters.flatMap { $0.members.map(\.host) + ($0.dns.map { [$0.serverHost] } ?? []) })
        let fleet = try await Fleet.connect(built.inventory.hosts.filter { hostNames.contains($0.name) },
                                            options: options, progress: progress)
        do {
            try await stop(built, fleet: fleet)
            await fleet.close()
        } catch {
            await fleet.close()
            throw error
        }
    }

    private func stop(_ built: PlanBuilder.Result, fleet: Fleet) async throws {
        // Dependent clusters first: a discovery backend goes down last.
        for cluster in built.plan.clusters.reversed() {
            // One member at a time: a leader told to stop hands leadership to a live peer first,
            // and waits up to 7 s for one that is itself stopping (measured: `down` of three
            // members stopped in parallel took 7.2 s; the last member, alone, stops at once).
            for member in cluster.members {
                let output = try await fleet.check(member.host, "stop", Self.stopScript(member, wipe: wipeData), timeout: 60)
                progress.host(member.host, "stop", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            if let dns = cluster.dns {
                let pidfile = "/run/etcd/dnsmasq-\(cluster.name).pid"
                try await fleet.check(dns.serverHost, "dns", """
                    rm -f \(Shell.quote(dns.configPath))
                    if [ -d /run/systemd/system ] && systemctl is-active -q dnsmasq 2>/dev/null; then systemctl restart dnsmasq; fi
                    if [ -s \(Shell.quote(pidfile)) ]; then kill "$(cat \(Shell.quote(pidfile)))" 2>/dev/null || true; rm -f \(Shell.quote(pidfile)); fi
                    """)
                progress.host(dns.serverHost, "dns", "\(cluster.name): dnsmasq config removed")
            }
            if wipeData, cluster.discovery != nil {
                var tokens = try built.state.discoveryTokens()
                tokens[cluster.name] = nil  // a wiped cluster bootstraps again, with a fresh token
                try built.state.saveDiscoveryTokens(tokens)
            }
        }
    }

    /// Stops by the recorded pid (never by name), waiting a bounded time for etcd to exit.
    static func stopScript(_ member: MemberPlan, wipe: Bool) -> String {
        let p = member.paths
        let unit = Shell.quote("etcd-\(member.cluster)")
        var script = """
        if [ -d /run/systemd/system ] && systemctl is-active -q \(unit) 2>/dev/null; then
            systemctl stop \(unit); echo stopped unit
        elif pid=$(cat \(Shell.quote(p.pidfile)) 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            rm -f \(Shell.quote(p.pidfile)); echo "stopped pid $pid"
        else
            echo not running
        fi
        """
        if wipe {
            script += "\nrm -rf \(Shell.quote(p.data)) \(Shell.quote(p.configDir + "/member.id")) && echo data wiped"
        } else {
            script += "\necho data kept in \(Shell.quote(p.data))"
        }
        return script
    }
}
