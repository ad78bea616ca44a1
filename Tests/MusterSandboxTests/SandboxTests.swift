import Foundation
import MusterBasics
import MusterSandbox
import Testing

/// Runs a command on a sandbox host through the real `ssh` client (openssh-client) with the
/// sandbox's key and known_hosts, after the route check muster itself does.
func ssh(_ host: SandboxHost, _ state: SandboxState, _ command: String,
         timeout: TimeInterval = 30) throws -> ProcessResult {
    try Sandbox.checkRoute(to: host.address, stateDir: state.stateDir)
    return try LocalProcess.run([
        "/usr/bin/ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=\(state.knownHostsPath)", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-F", "/dev/null",
        "-i", state.clientKeyPath, "-p", String(host.sshPort), "root@\(host.address)", command,
    ], timeout: timeout)
}

/// Fails (never skips) when the machine cannot run a sandbox.
func requireMachine() throws {
    try #require(geteuid() == 0, "the sandbox tests need root (network namespaces, bridge, mounts)")
    for (path, package) in [("/usr/sbin/ip", "iproute2"), ("/usr/sbin/sshd", "openssh-server"),
                            ("/usr/bin/ssh", "openssh-client"), ("/usr/sbin/dnsmasq", "dnsmasq-base")] {
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "\(path) is missing: apt-get install -y \(package)")
    }
}

@Suite("sandbox hosts", .serialized)
struct SandboxHostTests {
    let state: SandboxState

    init() throws {
        try requireMachine()
        state = try SharedSandbox.acquire(hosts: 3)
    }

    @Test func upBuildsEveryHost() throws {
        #expect(state.hosts.map(\.name) == ["host1", "host2", "host3"])
        let namespaces = try LocalProcess.check(["/usr/sbin/ip", "netns", "list"]).stdoutText
        for host in state.hosts {
            #expect(namespaces.contains(host.namespace))
            #expect(host.address.hasPrefix(String(state.subnet.dropLast(4))))
        }
        #expect(FileManager.default.fileExists(atPath: "/sys/class/net/\(state.bridge)"))
        let report = try #require(Sandbox.statusReport(stateDir: state.stateDir))
        #expect(report.healthy, "\(report.report)")
    }

    @Test func sshIntoEveryHost() throws {
        for host in state.hosts {
            let result = try ssh(host, state, "hostname; ip -o -4 addr show dev eth0; id -u")
            #expect(result.succeeded, "\(host.name): \(result.stderrText)")
            let lines = result.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines.first == host.name)
            #expect(result.stdoutText.contains("inet \(host.address)/24"))
            #expect(lines.last == "0")
        }
    }

    @Test func routeCheckRefusesOtherAddresses() throws {
        try Sandbox.checkRoute(to: state.hosts[0].address)
        for address in ["127.0.0.1", "192.0.2.1", "10.99.99.99"] {
            #expect(throws: SandboxError.self) { try Sandbox.checkRoute(to: address, stateDir: state.stateDir) }
        }
    }

    @Test func filesystemsArePrivate() throws {
        let probe = "/opt/probe"
        #expect(!FileManager.default.fileExists(atPath: probe), "the controller has \(probe) before the test")
        let write = try ssh(state.hosts[0], state, "mkdir -p /opt && echo host1 > \(probe) && cat \(probe)")
        #expect(write.succeeded && write.stdoutText == "host1\n", "\(write.stderrText)")
        let other = try ssh(state.hosts[1], state, "test ! -e \(probe) && echo absent")
        #expect(other.stdoutText == "absent\n", "host2 sees host1's \(probe)")
        #expect(!FileManager.default.fileExists(atPath: probe), "the controller sees host1's \(probe)")
        // Each host has its own /etc/hosts and hostname, and the same check through nsenter.
        let hosts = try Sandbox.exec(host: state.hosts[1], command: "cat /etc/hosts; hostname")
        #expect(hosts.stdoutText.contains(state.hosts[1].fqdn) && !hosts.stdoutText.contains(state.hosts[0].fqdn))
        _ = try ssh(state.hosts[0], state, "rm -f \(probe)")
    }

    @Test func hostsAreBare() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd"),
                "the controller should have etcd-server's /usr/bin/etcd for this test to mean anything")
        for host in state.hosts {
            let result = try ssh(host, state, """
                test ! -x /usr/bin/etcd && test ! -e /usr/bin/etcdctl && test ! -e /opt/swift \
                && test ! -e /work && test ! -e /var/lib/muster && test -x /usr/sbin/dnsmasq \
                && test ! -e /etc/ssh/ssh_host_rsa_key && echo bare
                """)
            #expect(result.stdoutText == "bare\n", "\(host.name) is not bare: \(result.stderrText)")
        }
    }

    @Test func dnsFromOneHostThroughDnsmasqOnAnother() throws {
        let server = state.hosts[2], client = state.hosts[0]
        let name = "x.\(state.domain)"
        let dnsmasq = Shell.join([
            "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--listen-address=\(server.address)", "--bind-interfaces",
            "--host-record=\(name),\(server.address)",
            "--srv-host=_etcd-server._tcp.\(state.domain),\(name),2380,0,100",
        ])
        let start = try ssh(server, state,
                            "setsid \(dnsmasq) </dev/null >/tmp/dnsmasq.log 2>&1 & echo $!")
        let pid = start.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(start.succeeded && Int(pid) != nil, "\(start.stderrText)")
        defer { _ = try? ssh(server, state, "kill \(pid)") }

        let resolv = try ssh(client, state, "cat /etc/resolv.conf")
        #expect(resolv.stdoutText.contains("nameserver \(server.address)"))
        var answer = ""
        for _ in 0..<20 {
            let lookup = try ssh(client, state, "getent hosts \(name)")
            answer = lookup.stdoutText
            if lookup.succeeded { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        #expect(answer.hasPrefix(server.address), "getent on \(client.name) answered '\(answer)'")
        // etcd's SRV lookup, through the same resolver (getent has no SRV; ask dnsmasq's own
        // answer through the host's resolver with a tiny DNS query in Python when present).
        let stopped = try ssh(server, state, "kill \(pid) && for i in $(seq 50); do kill -0 \(pid) 2>/dev/null || exit 0; sleep 0.1; done; exit 1")
        #expect(stopped.succeeded, "dnsmasq on \(server.name) did not stop")
    }

    @Test func secondUpChangesNothing() throws {
        let before = try #require(Sandbox.status(stateDir: state.stateDir))
        let (again, alreadyRunning) = try Sandbox.up(hosts: 3, stateDir: state.stateDir) { _ in }
        #expect(alreadyRunning)
        #expect(again == before)
        #expect(Sandbox.status(stateDir: state.stateDir) == before)
        let report = try #require(Sandbox.statusReport(stateDir: state.stateDir))
        #expect(report.healthy, "\(report.report)")
    }

    @Test func inventories() throws {
        let dir = NSTemporaryDirectory() + "muster-sandbox-inv-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try Sandbox.writeInventory(state: state, bootstrap: .static, to: dir + "/static.yml")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("  host1: { address: \(state.hosts[0].address) }\n"))
        #expect(text.contains("    members: [host1, host2, host3]\n    tls: false\n    bootstrap: static\n"))
        #expect(text.contains("  identity: \(state.clientKeyPath)\n  known_hosts: \(state.knownHostsPath)\n"))
        let discovery = try Sandbox.inventoryYAML(state: state, bootstrap: .discovery)
        #expect(discovery.contains("  disco:\n    members: [host1]\n"))
        #expect(discovery.contains("    members: [host2, host3]\n    tls: false\n    bootstrap: { discovery: { cluster: disco, size: 2 } }\n"))
        let dns = try Sandbox.inventoryYAML(state: state, bootstrap: .dns)
        #expect(dns.contains("dns:\n  server: host3\n  domain: sandbox.muster.test\n"))
        #expect(dns.contains("fqdn: host2.sandbox.muster.test }"))
        #expect(dns.contains("    bootstrap: { dns: {} }\n"))
        // The controller's etcd 3.4 finds DNS SRV members only over TLS; 3.5 also over plain http.
        #expect(dns.contains("    tls: true\n    bootstrap: { dns: {} }\n"), "\(dns)")
        let dns35 = try Sandbox.inventoryYAML(state: state, bootstrap: .dns, memberVersion: "3.5.16")
        #expect(dns35.contains("    tls: false\n    bootstrap: { dns: {} }\n"), "\(dns35)")
        let dns34 = try Sandbox.inventoryYAML(state: state, bootstrap: .dns, memberVersion: "3.4.23")
        #expect(dns34.contains("    tls: true\n    bootstrap: { dns: {} }\n"), "\(dns34)")
    }
}

@Suite("sandbox lifecycle", .serialized)
struct SandboxLifecycleTests {
    @Test func downLeavesNothingAndHalfBuiltIsRebuilt() throws {
        try requireMachine()
        let dir = "/var/lib/muster/sandbox-lifecycle-\(getpid())"
        var log: [String] = []
        var downDone = false
        defer { if !downDone { try? Sandbox.down(stateDir: dir) { _ in } } }
        let (first, existed) = try Sandbox.up(hosts: 1, stateDir: dir) { log.append($0) }
        #expect(!existed)
        // A half-built sandbox (a host's sshd killed, as by a killed run) is torn down and rebuilt.
        let sshd = try #require(first.hosts[0].sshd)
        kill(sshd.pid, SIGKILL)
        // Bounded wait until the kernel has taken it down (it may linger as a zombie briefly).
        for _ in 0..<50 {
            guard let stat = try? String(contentsOfFile: "/proc/\(sshd.pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"),
                  !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") else { break }
            usleep(100_000)
        }
        let (second, existedAgain) = try Sandbox.up(hosts: 1, stateDir: dir) { log.append($0) }
        #expect(!existedAgain)
        #expect(second.hosts[0].sshdPid != sshd.pid)
        #expect(log.contains { $0.contains("half-built or broken") })
        let result = try ssh(second.hosts[0], second, "hostname")
        #expect(result.stdoutText == "host1\n", "\(result.stderrText)")
        // A process muster would leave running on the host dies with it.
        let sleeper = try Sandbox.exec(host: second.hosts[0], command: "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo ok")
        #expect(sleeper.stdoutText == "ok\n")

        downDone = true
        try Sandbox.down(stateDir: dir) { log.append($0) }
        #expect(Sandbox.leftovers(of: second).isEmpty, "\(Sandbox.leftovers(of: second))")
        #expect(Sandbox.leftovers(of: first).isEmpty, "\(Sandbox.leftovers(of: first))")
        let namespaces = try LocalProcess.check(["/usr/sbin/ip", "netns", "list"]).stdoutText
        #expect(!namespaces.contains(second.hosts[0].namespace))
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(second.bridge)"))
        #expect(!FileManager.default.fileExists(atPath: dir))
        for process in first.pids + second.pids {
            // The same pid with the same start time would be the same process (pids get reused).
            let stat = (try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            let alive = fields.count > 19 && fields[0] != "Z" && UInt64(fields[19]) == process.startTime
            #expect(!alive, "\(process.role) (pid \(process.pid)) still runs")
        }
        let sleeping = try LocalProcess.run(["/usr/bin/pgrep", "-f", "^sleep 600$"])
        #expect(sleeping.stdoutText.isEmpty, "a host process outlived down")
        #expect(throws: SandboxError.self) { try Sandbox.checkRoute(to: second.hosts[0].address, stateDir: dir) }
    }

    @Test func inventoryNeedsTwoHostsForDiscovery() throws {
        let host = SandboxHost(name: "host1", namespace: "muster-h1", address: "10.213.7.11",
                               fqdn: "host1.sandbox.muster.test", sshPort: 22, veth: "mstr0-h1",
                               rootDir: "/x", upperDir: "/x/u", workDir: "/x/w", mergedDir: "/x/r",
                               logPath: "/x/l", launcher: nil, sshd: nil)
        let state = SandboxState(phase: .running, slot: 0, bridge: "mstr-br0", subnet: "10.213.7.0/24",
                                 gateway: "10.213.7.1", domain: "sandbox.muster.test", hosts: [host],
                                 clientKeyPath: "/k", knownHostsPath: "/kh", stateDir: "/s", createdAt: Date())
        #expect(throws: SandboxError.self) { try Sandbox.inventoryYAML(state: state, bootstrap: .discovery) }
        let text = try Sandbox.inventoryYAML(state: state, bootstrap: .static)
        #expect(text == """
            # generated by muster sandbox (/s, bridge mstr-br0, 10.213.7.0/24)
            ssh:
              user: root
              port: 22
              identity: /k
              known_hosts: /kh
            member:
              binary: /usr/bin/etcd
            hosts:
              host1: { address: 10.213.7.11 }
            clusters:
              main:
                members: [host1]
                tls: false
                bootstrap: static

            """)
    }
}
