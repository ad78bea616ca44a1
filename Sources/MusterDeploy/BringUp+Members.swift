import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH

/// Starting members gated on their peers, rolling restarts, and the bounded wait for health.
extension BringUp {
    /// Starts the members in order, each once its own host is ready and the previous member
    /// listens.
    func start(_ cluster: ClusterPlan, fleet: Fleet, facts: [String: HostFacts],
               preparation: HostPreparation) async throws {
        for member in cluster.members {
            if facts[member.host]?.members[cluster.name]?.runningPid != nil {
                progress.host(member.host, "start", "\(cluster.name) already running")
                continue
            }
            try await preparation.ready(member.host)
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

    func waitForPort(_ member: MemberPlan, fleet: Fleet) async throws {
        let port = member.listenPorts.first ?? 2380
        for _ in 0..<500 {
            if PortProbe.isOpen(host: member.address, port: port) { return }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw await failure(member, fleet: fleet, step: "start", "peer port \(port) did not open within 5 s")
    }

    /// Restarts running members one at a time, each healthy again before the next.
    func rollingRestart(_ members: [MemberPlan], cluster: ClusterPlan, fleet: Fleet, tls: EtcdTLS?) async throws {
        for member in members {
            let stop = TearDown.stopScript(member, wipe: false)
            try await fleet.check(member.host, "restart", stop, timeout: 60)
            let output = try await fleet.check(member.host, "restart", "sh \(Shell.quote(member.paths.startScript))")
            progress.host(member.host, "restart", "\(cluster.name): \(output.trimmingCharacters(in: .whitespacesAndNewlines)) (new certificates)")
            try await waitHealthy(ClusterPlan(copying: cluster, members: [member]), fleet: fleet, tls: tls)
        }
    }

    func waitHealthy(_ cluster: ClusterPlan, fleet: Fleet, tls: EtcdTLS?) async throws {
        let endpoints = try await Endpoints.open(for: cluster, fleet: fleet, viaSSH: false, tls: tls)
        do {
            try await poll(cluster, endpoints: endpoints, fleet: fleet)
            await endpoints.close()
        } catch {
            await endpoints.close()
            throw error
        }
    }

    func poll(_ cluster: ClusterPlan, endpoints: Endpoints, fleet: Fleet) async throws {
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
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw await failure(unhealthy[0], fleet: fleet, step: "health",
                            "\(unhealthy.map(\.name).joined(separator: ", ")) not healthy after 60 s")
    }

    /// The error for a member that failed, with the last lines of its log and etcd's known causes.
    func failure(_ member: MemberPlan, fleet: Fleet, step: String, _ message: String) async -> DeployError {
        let log = (try? await fleet.session(member.host).run("tail -n 25 \(Shell.quote(member.paths.log))", timeout: 10, privileged: true))?.stdoutText ?? ""
        var text = "\(message)\nlast lines of \(member.paths.log):\n\(log)"
        if let cause = KnownErrors.explain(log) { text += "\ncause: \(cause)" }
        return DeployError(host: member.host, step: step, text)
    }

    /// etcd ignores name, initial cluster, token, bootstrap mode and peer URLs once it has data;
    /// keeping a running member on an old file while claiming success would be a lie.
    func refuseIgnoredChanges(_ cluster: ClusterPlan, changed files: [RenderedFile], running: [MemberPlan],
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
}
