import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// Faults on the sandbox: each says what the operator sees, and that nothing on any host changed
/// (or that the next `up` converges).
@Suite struct FaultTests {
    /// Every host's etcd-related files and processes, to compare before and after a refused run.
    private func listings() throws -> [String] {
        try ["host1", "host2", "host3"].map {
            try DeploySandbox.exec($0, "ls -la /var/lib/etcd /etc/etcd /opt/muster/bin 2>&1; cat /run/etcd/*.pid 2>/dev/null; pgrep -a 'etcd|dnsmasq'; true")
        }
    }

    private func expectRefusal(_ builder: PlanBuilder, naming needles: [String]) async throws {
        do {
            _ = try await DeploySandbox.up(builder)
            Issue.record("up should have failed")
        } catch {
            for needle in needles { #expect("\(error)".contains(needle), "\(error)") }
            // What the command line exits with: errors that are not classified count as host (1).
            #expect(((error as? any ClassifiedError)?.kind ?? .host).exitCode == 1, "\(error)")
        }
    }

    @Test func aFullDiskAndAParentThatKeepsEtcdOutAreRefusedInPreflight() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            // A small tmpfs over host3's data path (never the controller's disk), and a root-only
            // directory above host2's.
            _ = try DeploySandbox.exec("host3", "mkdir -p /var/lib/etcd && mount -t tmpfs -o size=20m muster-full /var/lib/etcd")
            _ = try DeploySandbox.exec("host2", "install -d -m 0700 -o root /var/lib/etcd")
            let before = try listings()
            try await expectRefusal(builder, naming: ["host3: only", "MiB free for /var/lib/etcd/main",
                                                      "host2: directory /var/lib/etcd (mode 700, owner root) keeps the etcd user out",
                                                      "nothing was changed on any host"])
            #expect(try listings() == before)
            _ = try DeploySandbox.exec("host3", "umount /var/lib/etcd")
            _ = try DeploySandbox.exec("host2", "chmod 0755 /var/lib/etcd")
            let fixed = try await DeploySandbox.up(builder)
            #expect(fixed.reports.allSatisfy { $0.ok }, "\(fixed.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func aSilentHostAndAChangedHostKeyStopTheRunNamingTheHostWithNothingChanged() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "ssh:\n", with: "ssh:\n  connect_timeout: 2\n")
            }
            let before = try listings()
            // host2's link down inside its namespace: packets are dropped, not refused.
            let host2 = try DeploySandbox.host("host2")
            try LocalProcess.check(["ip", "netns", "exec", host2.namespace, "ip", "link", "set", "eth0", "down"])
            try await expectRefusal(builder, naming: ["host2", "timed out"])
            try LocalProcess.check(["ip", "netns", "exec", host2.namespace, "ip", "link", "set", "eth0", "up"])
            #expect(try listings() == before)

            // host1 answers with a key other than the one known_hosts holds.
            let state = try DeploySandbox.acquire()
            let known = try String(contentsOfFile: state.knownHostsPath, encoding: .utf8)
            let other = try TemporaryDirectory.create(prefix: "muster-otherkey") + "/key"
            try LocalProcess.check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other])
            let otherKey = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
            let host1 = try DeploySandbox.host("host1")
            let forged = known.split(separator: "\n").map { line -> String in
                line.contains(host1.address) && line.contains("ssh-ed25519")
                    ? String(line.split(separator: " ")[0]) + " " + otherKey : String(line)
            }.joined(separator: "\n") + "\n"
            try forged.write(toFile: state.knownHostsPath, atomically: true, encoding: .utf8)
            defer { try? known.write(toFile: state.knownHostsPath, atomically: true, encoding: .utf8) }
            try await expectRefusal(builder, naming: ["host1", "HOST KEY CHANGED"])
            #expect(try listings() == before)
        }
    }

    /// host2 switched off (its address answers, nothing listens on 22), then a key the hosts do
    /// not authorize: exit 1 naming the host, no file or process changed on any host.
    @Test func aRefusedConnectionAndARefusedKeyStopTheRunNamingTheHostWithNothingChanged() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let before = try listings()
            try DeploySandbox.powerOff("host2")
            do {
                try await expectRefusal(builder, naming: ["host2", "Connection refused"])
            } catch {
                try DeploySandbox.powerOn("host2")
                throw error
            }
            try DeploySandbox.powerOn("host2")
            #expect(try listings() == before)

            let stranger = try TemporaryDirectory.create(prefix: "muster-stranger") + "/key"
            try LocalProcess.check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger])
            let state = try DeploySandbox.acquire()
            let refused = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "identity: \(state.clientKeyPath)", with: "identity: \(stranger)")
            }
            try await expectRefusal(refused, naming: ["host1", "host2", "host3", "authentication as root failed"])
            #expect(try listings() == before)
        }
    }

    @Test func aKilledMemberFailsVerifyByNameAndUpRestartsItAlone() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try await DeploySandbox.up(builder)
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            _ = try DeploySandbox.exec("host2", "kill -9 \(pids[1])")
            let workspace = try builder.build()
            let reports = try await Verification.run(workspace: workspace, options: DeploySandbox.options, viaSSH: false,
                                                     progress: Progress(quiet: true))
            let report = try #require(reports.first)
            #expect(!report.ok)
            #expect(report.failedChecks.contains { $0.detail.contains("host2") }, "\(report.table())")
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")
            #expect(healed.hosts.filter { !$0.started.isEmpty }.map(\.host) == ["host2"], "\(healed.hosts)")
            #expect(try DeploySandbox.exec("host1", "cat /run/etcd/main.pid") == pids[0])
            #expect(try DeploySandbox.exec("host3", "cat /run/etcd/main.pid") == pids[2])
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func aSecondRunOnTheSameInventoryIsRefusedAtOnceNamingTheLock() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let holder = try builder.build(lock: true)
            defer { holder.state.unlock() }
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("a second run must be refused")
            } catch let error as StateError {
                #expect(error.kind == .refused)
                #expect(error.description.contains("\(holder.state.directory)/lock"), "\(error)")
            }
        }
    }
}
