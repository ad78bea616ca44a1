import Foundation
import MusterBasics
import MusterSSH
import MusterSandbox
import Testing

/// Runs `command` on `host` through muster's own SSH client, with the sandbox's key and
/// known_hosts, after the route check muster itself does. Nil when the host does not answer.
func musterSSH(_ host: SandboxHost, _ state: SandboxState, _ command: String,
               connectTimeout: Double = 5) async throws -> CommandResult {
    try Sandbox.checkRoute(to: host.address, stateDir: state.stateDir)
    let target = SSHTarget(name: host.name, address: host.address, port: host.sshPort, user: "root",
                           identityFile: state.clientKeyPath, agentSocket: nil,
                           knownHostsFile: state.knownHostsPath, connectTimeout: connectTimeout,
                           commandTimeout: 60)
    let session = try await SSHSession.connect(target)
    do {
        let result = try await session.run(command)
        await session.close()
        return result
    } catch {
        await session.close()
        throw error
    }
}

/// Polls `condition` every `interval` seconds, at most `attempts` times.
func eventually(attempts: Int, interval: Double, _ condition: () async -> Bool) async -> Bool {
    for attempt in 0..<attempts {
        if await condition() { return true }
        if attempt + 1 < attempts { try? await Task.sleep(nanoseconds: UInt64(interval * 1e9)) }
    }
    return false
}

/// `systemctl is-system-running --wait` answers once boot is over; bounded by the timeout.
func systemState(_ host: SandboxHost) -> (state: String, failed: String) {
    let state = (try? Sandbox.exec(host: host, command: "timeout 60 systemctl is-system-running --wait", timeout: 70))?
        .stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) ?? "(not reachable)"
    let failed = (try? Sandbox.exec(host: host, command: "systemctl --failed --no-legend --plain; systemd-analyze blame | head -5"))?
        .stdoutText ?? ""
    return (state, failed)
}

/// Whether the recorded process still runs (same pid, same start time).
func isAlive(_ process: SandboxProcess) -> Bool {
    let stat = (try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    return fields.count > 19 && fields[0] != "Z" && UInt64(fields[19]) == process.startTime
}

@Suite("sandbox hosts with systemd", .serialized)
struct SystemdHostTests {
    init() throws {
        try requireMachine()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-nspawn"),
                     "/usr/bin/systemd-nspawn is missing: apt-get install -y systemd-container (scripts/setup.sh)")
    }

    @Test func bootRunUnitsRebootAndDown() async throws {
        let dir = "/var/lib/muster/sandbox-systemd-\(getpid())"
        var downDone = false
        defer { if !downDone { try? Sandbox.down(stateDir: dir) { _ in } } }
        let (state, existed) = try Sandbox.up(hosts: 2, initMode: .systemd, stateDir: dir) {
            FileHandle.standardError.write(Data("[systemd sandbox] \($0)\n".utf8))
        }
        #expect(!existed)
        #expect(state.hosts.map(\.initSystem) == [.systemd, .systemd])
        let report = try #require(Sandbox.statusReport(stateDir: dir))
        #expect(report.healthy, "\(report.report)")
        #expect(report.report.contains("init systemd"))

        for host in state.hosts {
            let (running, failed) = systemState(host)
            #expect(running == "running", "\(host.name) is \(running); failed units and the slowest:\n\(failed)")
            // muster's detection and what its deploy code uses, over muster's SSH client.
            let facts = try await musterSSH(host, state, """
                cat /proc/1/comm; hostname; id -u; test -d /run/systemd/system && echo systemd
                systemctl is-active ssh.service
                test ! -e /usr/bin/etcd && test ! -e /etc/etcd && test ! -e /opt/swift && test ! -e /work \\
                    && test ! -e /var/lib/muster && test ! -e /etc/ssh/ssh_host_rsa_key && echo bare
                systemctl list-units --state=active --no-legend --plain 'etcd*' 'postgres*' | wc -l
                systemctl cat etcd.service >/dev/null 2>&1 || echo no-etcd-unit
                """)
            #expect(facts.succeeded, "\(host.name): \(facts.stderrText)")
            // No etcd.service (nor its SysV twin) and no postgres: the controller's packages stay off.
            #expect(facts.stdoutText == "systemd\n\(host.name)\n0\nsystemd\nactive\nbare\n0\nno-etcd-unit\n", "\(host.name): \(facts.stdoutText)")
        }

        // A unit as muster writes one: its own user made by useradd, daemon-reload, journalctl -u.
        let host1 = state.hosts[0]
        let unit = try await musterSSH(host1, state, """
            set -e
            if id -u etcd >/dev/null 2>&1; then echo "etcd user existed"; fi
            id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/etcd --shell /usr/sbin/nologin etcd
            printf '[Unit]\\nDescription=probe\\n[Service]\\nUser=etcd\\nExecStart=/bin/sh -c "id -un; exec sleep 601"\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/muster-probe.service
            systemctl daemon-reload
            systemctl enable -q muster-probe.service
            systemctl start muster-probe.service
            for i in $(seq 50); do journalctl -u muster-probe.service -o cat | grep -qx etcd && break; sleep 0.1; done
            systemctl is-active muster-probe.service
            journalctl -u muster-probe.service -o cat | grep -x etcd
            echo persisted > /var/lib/muster-probe
            """)
        #expect(unit.succeeded && unit.stdoutText == "active\netcd\n", "\(unit.stdoutText)\(unit.stderrText)")

        // `systemctl reboot`: nspawn exits 133, the same loop boots the host again.
        let loop = try #require(host1.launcher)
        let before = Sandbox.processes(of: host1)
        let oldNspawn = try #require(before.first { $0.role.hasSuffix("systemd-nspawn") })
        _ = try? Sandbox.exec(host: host1, command: "systemctl reboot", timeout: 30)
        let back = await eventually(attempts: 120, interval: 0.5) {
            guard !isAlive(oldNspawn), let fresh = Sandbox.processes(of: host1).first(where: { $0.role.hasSuffix("systemd-nspawn") }),
                  fresh != oldNspawn else { return false }
            let answer = try? await musterSSH(host1, state, "cat /var/lib/muster-probe; systemctl is-active muster-probe.service", connectTimeout: 2)
            return answer?.stdoutText == "persisted\nactive\n"
        }
        let console = String((try? String(contentsOfFile: host1.logPath, encoding: .utf8))?.suffix(2000) ?? "")
        #expect(back, "host1 did not come back within 60 s with its disk and enabled unit; its log:\n\(console)")
        #expect(isAlive(loop), "the boot loop (pid \(loop.pid)) did not outlive the reboot")
        #expect(Sandbox.status(stateDir: dir)?.hosts[0].launcher == loop)
        let log = (try? String(contentsOfFile: host1.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("systemd-nspawn exited with status 133") && log.contains("muster: boot 2 of host1"))

        // down: every host powers off, nothing is left.
        let running = state.hosts.flatMap(Sandbox.processes(of:))
        #expect(running.count == 6, "\(running)")  // per host: boot loop, nspawn, systemd
        downDone = true
        var lines: [String] = []
        try Sandbox.down(stateDir: dir) { lines.append($0) }
        #expect(Sandbox.leftovers(of: state).isEmpty, "\(Sandbox.leftovers(of: state))")
        for process in running + before { #expect(!isAlive(process), "\(process.role) (pid \(process.pid)) still runs") }
        #expect(!lines.contains { $0.contains("still running") }, "a host did not power off on SIGTERM: \(lines)")
        for host in state.hosts {
            #expect(lines.contains("\(host.name) powered off (systemd-nspawn exited with status 0)"), "\(lines)")
        }
        let namespaces = try LocalProcess.check(["/usr/sbin/ip", "netns", "list"]).stdoutText
        for host in state.hosts { #expect(!namespaces.contains(host.namespace)) }
        let sleeping = try LocalProcess.run(["/usr/bin/pgrep", "-f", "^sleep 601$"])
        #expect(sleeping.stdoutText.isEmpty, "the probe unit outlived down")
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    /// nspawn killed with SIGKILL leaves its container running (reparented): `up` finds the host
    /// broken, and tearing it down kills the container through the host's cgroup.
    @Test func killedNspawnIsRebuiltAndItsContainerKilled() async throws {
        let dir = "/var/lib/muster/sandbox-killed-\(getpid())"
        var downDone = false
        defer { if !downDone { try? Sandbox.down(stateDir: dir) { _ in } } }
        let (first, _) = try Sandbox.up(hosts: 1, initMode: .systemd, stateDir: dir) { _ in }
        let host = first.hosts[0]
        let processes = Sandbox.processes(of: host)
        let nspawn = try #require(processes.first { $0.role.hasSuffix("systemd-nspawn") })
        let initProcess = try #require(processes.first { $0.role.hasSuffix(" init") })
        kill(nspawn.pid, SIGKILL)
        let loopEnded = await eventually(attempts: 50, interval: 0.1) { !isAlive(nspawn) && !(host.launcher.map(isAlive) ?? false) }
        #expect(loopEnded, "the boot loop went on after nspawn was killed")
        #expect(isAlive(initProcess), "the container died with nspawn: this test means nothing")
        let report = try #require(Sandbox.statusReport(stateDir: dir))
        #expect(!report.healthy)

        var lines: [String] = []
        let (second, existed) = try Sandbox.up(hosts: 1, initMode: .systemd, stateDir: dir) { lines.append($0) }
        #expect(!existed && lines.contains { $0.contains("half-built or broken") }, "\(lines)")
        #expect(!isAlive(initProcess), "the orphaned container (systemd pid \(initProcess.pid)) outlived the rebuild")
        let answer = try await musterSSH(second.hosts[0], second, "cat /proc/1/comm")
        #expect(answer.stdoutText == "systemd\n")
        downDone = true
        try Sandbox.down(stateDir: dir) { _ in }
        #expect(Sandbox.leftovers(of: second).isEmpty, "\(Sandbox.leftovers(of: second))")
    }

    @Test func mixedSandboxHasBothKinds() async throws {
        let dir = "/var/lib/muster/sandbox-mixed-\(getpid())"
        var downDone = false
        defer { if !downDone { try? Sandbox.down(stateDir: dir) { _ in } } }
        let (state, _) = try Sandbox.up(hosts: 2, initMode: .mixed, stateDir: dir) {
            FileHandle.standardError.write(Data("[mixed sandbox] \($0)\n".utf8))
        }
        #expect(state.hosts.map(\.initSystem) == [.systemd, .none])
        let report = try #require(Sandbox.statusReport(stateDir: dir))
        #expect(report.healthy, "\(report.report)")
        #expect(report.report.contains("host1  \(state.hosts[0].address)  netns \(state.hosts[0].namespace)  init systemd"))
        #expect(report.report.contains("host2  \(state.hosts[1].address)  netns \(state.hosts[1].namespace)  init none"))
        let probe = "cat /proc/1/comm; if test -e /run/systemd/system; then echo systemd; else echo no-systemd; fi"
        let systemd = try await musterSSH(state.hosts[0], state, probe)
        #expect(systemd.stdoutText == "systemd\nsystemd\n", "\(systemd.stdoutText)\(systemd.stderrText)")
        let bare = try await musterSSH(state.hosts[1], state, probe)
        #expect(bare.stdoutText == "sshd\nno-systemd\n", "\(bare.stdoutText)\(bare.stderrText)")
        // Both hosts reach each other over the bridge (a systemd host's network is its netns).
        let ping = try await musterSSH(state.hosts[0], state, "timeout 5 bash -c 'echo > /dev/tcp/\(state.hosts[1].address)/22' && echo open")
        #expect(ping.stdoutText == "open\n", "\(ping.stderrText)")
        downDone = true
        try Sandbox.down(stateDir: dir) { _ in }
        #expect(Sandbox.leftovers(of: state).isEmpty, "\(Sandbox.leftovers(of: state))")
    }
}
