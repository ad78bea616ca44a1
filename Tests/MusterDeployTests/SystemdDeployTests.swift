import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// Bring-ups on hosts that boot systemd (`sandbox up --init systemd`): members are units,
/// systemd restarts a killed member, every host rebooted at once brings the cluster back with its
/// keys and no `muster up`, and `down` leaves no unit enabled or running.
@Suite(.serialized) struct SystemdDeployTests {
    static let stateDir = "/var/lib/muster/sandbox-systemd-deploy-tests"

    private static var options: RunOptions {
        var options = RunOptions()
        options.addressGuard = { addresses in
            try Sandbox.checkRoutes(to: addresses, stateDir: SystemdDeployTests.stateDir)
        }
        return options
    }

    private func withSystemdSandbox(_ mode: SandboxInitMode = .systemd, _ body: (SandboxState) async throws -> Void) async throws {
        let (state, _) = try Sandbox.up(hosts: 3, initMode: mode, stateDir: Self.stateDir) {
            FileHandle.standardError.write(Data("[systemd sandbox] \($0)\n".utf8))
        }
        do {
            try await body(state)
            try Sandbox.down(stateDir: Self.stateDir) { _ in }
        } catch {
            try? Sandbox.down(stateDir: Self.stateDir) { _ in }
            throw error
        }
    }

    private func inventory(_ state: SandboxState, _ bootstrap: SandboxBootstrap, binary: String = "/usr/bin/etcd",
                           edit: (String) -> String = { $0 }) throws -> PlanBuilder {
        let directory = try TemporaryDirectory.create(prefix: "muster-systemd")
        let path = directory + "/inventory.yml"
        try Data(edit(try Sandbox.inventoryYAML(state: state, bootstrap: bootstrap, memberBinary: binary)).utf8).write(to: URL(fileURLWithPath: path))
        return PlanBuilder(inventoryPath: path, templatesDirectory: repositoryRoot + "/templates")
    }

    private func exec(_ state: SandboxState, _ host: String, _ command: String) throws -> String {
        guard let sandboxHost = state.host(named: host) else { throw SandboxError("no \(host)") }
        return try Sandbox.exec(host: sandboxHost, command: command).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func up(_ builder: PlanBuilder) async throws -> BringUp.Outcome {
        try await DeploySandbox.bringUp(builder: builder, options: Self.options, progress: Progress()).run()
    }

    /// Polls `check` (bounded: 120 tries, 0.5 s apart).
    private func eventually(_ what: String, _ check: () async throws -> Bool) async throws {
        for _ in 0..<120 {
            if (try? await check()) == true { return }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        Issue.record("\(what) did not happen within 60 s")
    }

    private func verify(_ builder: PlanBuilder) async throws -> Bool {
        let workspace = try builder.build()
        let reports = try await Verification.run(workspace: workspace, options: Self.options, viaSSH: false, progress: Progress(quiet: true))
        return reports.allSatisfy { $0.ok }
    }

    @Test func staticTLSAndDNSClustersLiveAsUnitsThroughKillsAndAReboot() async throws {
        try await withSystemdSandbox { state in
            let builder = try inventory(state, .static) { $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n") }
            let first = try await up(builder)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")
            #expect(try exec(state, "host1", "systemctl is-enabled etcd-main.service; systemctl is-active etcd-main.service") == "enabled\nactive")
            #expect(try exec(state, "host2", "systemctl show -p User --value etcd-main.service") == "etcd")
            // The unit's hardening holds on the running member: no capability, a private umask.
            let status = try exec(state, "host2", "grep -E '^(Umask|CapBnd|CapEff|NoNewPrivs):' /proc/$(systemctl show -p MainPID --value etcd-main.service)/status")
            #expect(status.contains("Umask:\t0077") && status.contains("CapBnd:\t0000000000000000")
                    && status.contains("CapEff:\t0000000000000000") && status.contains("NoNewPrivs:\t1"), "\(status)")
            let supervisors = first.reports.first?.supervisors ?? []
            #expect(supervisors.count == 3 && supervisors.allSatisfy { $0.supervisor == "systemd" && $0.state == "active" && $0.enabled == "enabled" && $0.pid != nil },
                    "\(supervisors)")

            // A re-run on the healthy cluster restarts nothing and moves no bytes.
            let pids = try ["host1", "host2", "host3"].map { try exec(state, $0, "systemctl show -p MainPID --value etcd-main.service") }
            let again = try await up(builder)
            #expect(again.bytesSent == 0, "\(again.hosts)")
            #expect(try ["host1", "host2", "host3"].map { try exec(state, $0, "systemctl show -p MainPID --value etcd-main.service") } == pids)
            // Nothing changed, so the supervisors' states are preflight's, and the same.
            let unchanged = again.reports.first?.supervisors ?? []
            #expect(unchanged.count == 3 && unchanged.allSatisfy { $0.supervisor == "systemd" && $0.state == "active" && $0.enabled == "enabled" },
                    "\(unchanged)")
            #expect(Set(unchanged.compactMap(\.pid).map(String.init)) == Set(pids), "\(unchanged)")

            // New certificates for host1's member reach it by a restart through systemd, host1's alone.
            let statePKI = try builder.build().state.directory + "/pki/main"
            for file in ["host1-server.crt", "host1-server.key", "host1-peer.crt", "host1-peer.key"] {
                try FileManager.default.removeItem(atPath: "\(statePKI)/\(file)")
            }
            let renewed = try await up(builder)
            #expect(renewed.reports.allSatisfy { $0.ok }, "\(renewed.reports.map { $0.table() })")
            #expect(renewed.hosts.filter { !$0.restarted.isEmpty }.map(\.host) == ["host1"], "\(renewed.hosts)")
            let renewedPids = try ["host1", "host2", "host3"].map { try exec(state, $0, "systemctl show -p MainPID --value etcd-main.service") }
            #expect(renewedPids[0] != pids[0] && renewedPids[0] != "0" && Array(renewedPids[1...]) == Array(pids[1...]), "\(pids) -> \(renewedPids)")
            #expect(try exec(state, "host1", "systemctl is-active etcd-main.service; cat /run/etcd/main.pid 2>/dev/null || echo no-pidfile") == "active\nno-pidfile",
                    "restarted by systemd, not by the start script")

            // kill -9 of a member: systemd brings it back.
            _ = try exec(state, "host2", "kill -9 \(renewedPids[1])")
            try await eventually("systemd restarting host2's member") {
                let pid = try exec(state, "host2", "systemctl show -p MainPID --value etcd-main.service")
                return pid != renewedPids[1] && pid != "0"
            }
            try await eventually("verify passing after the kill") { try await verify(builder) }

            // A key written, every host rebooted at once, no muster in between.
            let workspace = try builder.build()
            let pki = workspace.state.directory + "/pki/main"
            let endpoints = state.hosts.map { "https://\($0.address):2379" }.joined(separator: ",")
            let etcdctl = ["etcdctl", "--endpoints=\(endpoints)", "--cacert=\(pki)/ca.crt", "--cert=\(pki)/client.crt",
                           "--key=\(pki)/client.key", "--dial-timeout=3s"]
            #expect(try LocalProcess.run(etcdctl + ["put", "/before-reboot", "kept"], environment: ["ETCDCTL_API": "3"]).succeeded)
            for host in ["host1", "host2", "host3"] { _ = try? exec(state, host, "systemctl reboot") }
            try await eventually("the cluster back after rebooting every host") { try await verify(builder) }
            let value = try LocalProcess.run(etcdctl + ["get", "/before-reboot", "--print-value-only"], environment: ["ETCDCTL_API": "3"])
            #expect(value.stdoutText == "kept\n", "\(value.stderrText)")

            // down leaves no unit enabled or running; --wipe-data removes the data.
            var tearDown = TearDown(builder: builder, options: Self.options, progress: Progress())
            tearDown.wipeData = true
            try await tearDown.run()
            for host in ["host1", "host2", "host3"] {
                #expect(try exec(state, host, "systemctl is-enabled etcd-main.service 2>/dev/null; systemctl is-active etcd-main.service 2>/dev/null; test -d /var/lib/etcd/main/member && echo data") == "disabled\ninactive")
            }

            // DNS SRV on systemd hosts: dnsmasq is a unit enabled at boot too.
            let dns = try inventory(state, .dns)
            let formed = try await up(dns)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let server = try #require(try String(contentsOfFile: dns.inventoryPath, encoding: .utf8)
                .split(separator: "\n").first { $0.contains("server:") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces))
            #expect(try exec(state, server, "systemctl is-enabled muster-dnsmasq-main.service") == "enabled")
            // Every host rebooted at once: dnsmasq comes back before the members, which find
            // each other by name again, with their keys, and no muster in between.
            // etcd 3.4 bootstraps by DNS SRV over TLS only (the sandbox inventory says so).
            let dnsPKI = try dns.build().state.directory + "/pki/main"
            let dnsEndpoints = state.hosts.map { "https://\($0.address):2379" }.joined(separator: ",")
            let dnsEtcdctl = ["etcdctl", "--endpoints=\(dnsEndpoints)", "--cacert=\(dnsPKI)/ca.crt", "--cert=\(dnsPKI)/client.crt",
                              "--key=\(dnsPKI)/client.key", "--dial-timeout=3s"]
            #expect(try LocalProcess.run(dnsEtcdctl + ["put", "/dns-before-reboot", "kept"], environment: ["ETCDCTL_API": "3"]).succeeded)
            for host in ["host1", "host2", "host3"] { _ = try? exec(state, host, "systemctl reboot") }
            try await eventually("the DNS cluster back after rebooting every host") { try await verify(dns) }
            let dnsValue = try LocalProcess.run(dnsEtcdctl + ["get", "/dns-before-reboot", "--print-value-only"], environment: ["ETCDCTL_API": "3"])
            #expect(dnsValue.stdoutText == "kept\n", "\(dnsValue.stderrText)")
            var dnsDown = TearDown(builder: dns, options: Self.options, progress: Progress())
            dnsDown.wipeData = true
            try await dnsDown.run()
            #expect(try exec(state, server, "systemctl is-enabled muster-dnsmasq-main.service 2>/dev/null; systemctl is-active muster-dnsmasq-main.service 2>/dev/null") == "inactive")
        }
    }

    @Test func aMemberThatFailsToStartShowsTheJournal() async throws {
        try await withSystemdSandbox { state in
            // A data dir the etcd user cannot write (root's, 0700): etcd exits at start.
            let builder = try inventory(state, .static)
            _ = try exec(state, "host3", "install -d -m 0700 -o root -g root /var/lib/etcd/main")
            do {
                _ = try await up(builder)
                Issue.record("up should fail when a member cannot start")
            } catch let error as DeployError {
                #expect(error.host == "host3", "\(error)")
                #expect(error.description.contains("journalctl -u etcd-main.service"), "\(error)")
                #expect(error.description.contains("cluster 'main'"), "\(error)")
            }
            _ = try? exec(state, "host3", "rm -rf /var/lib/etcd/main")
        }
    }

    /// A mixed fleet (host1 and host3 systemd, host2 bare), etcd discovery through a cluster of
    /// the inventory on etcd 3.5, and a config change that restarts each member through its own
    /// supervisor, one at a time.
    @Test func discoveryOn35OverAMixedFleetRollsAConfigChangeThroughEachSupervisor() async throws {
        try await withSystemdSandbox(.mixed) { state in
            let builder = try inventory(state, .discovery, binary: DeploySandbox.etcd35)
            let formed = try await up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            #expect(try exec(state, "host3", "systemctl is-active etcd-main.service") == "active")
            #expect(try exec(state, "host2", "test -d /run/systemd/system && echo systemd; cat /run/etcd/main.pid >/dev/null && echo pidfile") == "pidfile")
            let main = formed.reports.first { $0.clusterName == "main" }?.supervisors ?? []
            #expect(main.first { $0.host == "host2" }?.supervisor == "process" && main.first { $0.host == "host2" }?.state == "running", "\(main)")
            #expect(main.first { $0.host == "host3" }?.supervisor == "systemd", "\(main)")
            let before = (try exec(state, "host3", "systemctl show -p MainPID --value etcd-main.service"),
                          try exec(state, "host2", "cat /run/etcd/main.pid"))
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "  main:\n", with: "  main:\n    etcd: { snapshot-count: 5000 }\n")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let rolled = try await up(builder)
            #expect(rolled.reports.allSatisfy { $0.ok }, "\(rolled.reports.map { $0.table() })")
            #expect(Set(rolled.hosts.filter { $0.restarted == ["main"] }.map(\.host)) == ["host2", "host3"], "\(rolled.hosts)")
            #expect(try exec(state, "host3", "systemctl show -p MainPID --value etcd-main.service") != before.0)
            #expect(try exec(state, "host2", "cat /run/etcd/main.pid") != before.1)

            // `supervisor: process` on systemd host3 moves its member out of its unit (one restart,
            // data kept, the unit disabled); taking it out again moves it back.
            let client = ["etcdctl", "--endpoints=http://\(try #require(state.host(named: "host2")).address):2379", "--dial-timeout=3s"]
            #expect(try LocalProcess.run(client + ["put", "/before-move", "kept"], environment: ["ETCDCTL_API": "3"]).succeeded)
            let host3 = try #require(state.host(named: "host3"))
            let plain = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try plain.replacingOccurrences(of: "  host3: { address: \(host3.address) }", with: "  host3: { address: \(host3.address), supervisor: process }")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let moved = try await up(builder)
            #expect(moved.reports.allSatisfy { $0.ok }, "\(moved.reports.map { $0.table() })")
            #expect(moved.hosts.filter { $0.restarted == ["main"] }.map(\.host) == ["host3"], "\(moved.hosts)")
            #expect(try exec(state, "host3", "systemctl is-enabled etcd-main.service; systemctl is-active etcd-main.service; readlink /proc/$(cat /run/etcd/main.pid)/exe") == "disabled\ninactive\n/opt/muster/bin/etcd-3.5.16")
            let asProcess = moved.reports.first { $0.clusterName == "main" }?.supervisors.first { $0.host == "host3" }
            #expect(asProcess?.supervisor == "process" && asProcess?.state == "running", "\(String(describing: asProcess))")
            try plain.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let back = try await up(builder)
            #expect(back.reports.allSatisfy { $0.ok }, "\(back.reports.map { $0.table() })")
            #expect(back.hosts.filter { $0.restarted == ["main"] }.map(\.host) == ["host3"], "\(back.hosts)")
            #expect(try exec(state, "host3", "systemctl is-enabled etcd-main.service; systemctl is-active etcd-main.service") == "enabled\nactive")
            #expect(try LocalProcess.run(client + ["get", "/before-move", "--print-value-only"], environment: ["ETCDCTL_API": "3"]).stdoutText == "kept\n")

            // `supervisor: systemd` where systemd is not PID 1 is refused in preflight, naming the host.
            let host2 = try #require(state.host(named: "host2"))
            try plain.replacingOccurrences(of: "  host2: { address: \(host2.address) }", with: "  host2: { address: \(host2.address), supervisor: systemd }")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            do {
                _ = try await up(builder)
                Issue.record("supervisor: systemd on a host without systemd was not refused")
            } catch let error as DeployError {
                #expect(error.message.contains("host2: supervisor: systemd, but systemd is not running as PID 1"), "\(error.message)")
            }
            try plain.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            var tearDown = TearDown(builder: builder, options: Self.options, progress: Progress())
            tearDown.wipeData = true
            try await tearDown.run()
            #expect(try exec(state, "host3", "systemctl is-enabled etcd-main.service 2>/dev/null; systemctl is-active etcd-main.service") == "disabled\ninactive")
        }
    }
}
