import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterInventory
import MusterPlan
import MusterWorkspace
import MusterSandbox

/// Real sshd, real etcd, real dnsmasq on the deploy sandbox. Serialized: the scenarios share
/// three hosts and the same ports, and each one leaves them wiped for the next.
@Suite(.serialized) struct BringUpTests {
    @Test func staticClusterComesUpVerifiesAndReRunsAsNoOp() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try DeploySandbox.exec("host1", "rm -rf /opt/muster")
            let first = try await DeploySandbox.up(builder)
            #expect(first.reports.count == 1)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")
            // etcdctl ships only when the inventory names it.
            #expect(try DeploySandbox.exec("host1", "ls /opt/muster/bin") == "etcd-3.4.23")

            // The running member is muster's shipped binary, not anything the host had.
            let exe = try DeploySandbox.exec("host1", "readlink /proc/$(cat /run/etcd/main.pid)/exe")
            #expect(exe == "/opt/muster/bin/etcd-3.4.23")
            #expect(try DeploySandbox.exec("host1", "test -e /usr/bin/etcd && echo present || echo absent") == "absent")

            // etcdctl on the controller agrees that every endpoint is healthy.
            let endpoints = try ["host1", "host2", "host3"].map { "http://\(try DeploySandbox.host($0).address):2379" }
            try Sandbox.checkRoute(to: try DeploySandbox.host("host1").address, stateDir: DeploySandbox.stateDir)
            let health = try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints[0])", "endpoint", "health", "--cluster"],
                                              environment: ["ETCDCTL_API": "3"])
            #expect(health.succeeded, "\(health.stderrText)")
            #expect(health.stderrText.components(separatedBy: "is healthy").count - 1 == 3, "\(health.stderrText)")

            // Re-run: nothing moves, the same processes keep running, files keep inode and mtime.
            let probe = "cat /run/etcd/main.pid; stat -c '%i %Y' /opt/muster/bin/etcd-3.4.23 /etc/etcd/main/conf.yml /etc/etcd/main/start-member.sh"
            let before = try DeploySandbox.exec("host2", probe)
            let second = try await DeploySandbox.up(builder)
            #expect(second.bytesSent == 0)
            #expect(!second.changed)
            #expect(second.reports.allSatisfy { $0.ok })
            #expect(try DeploySandbox.exec("host2", probe) == before)

            // down keeps data: a key written before survives down and up.
            try LocalProcess.check(["etcdctl", "--endpoints=\(endpoints[1])", "put", "/kept", "yes"], environment: ["ETCDCTL_API": "3"])
            try await DeploySandbox.down(builder, wipe: false)
            #expect(try DeploySandbox.exec("host3", "test -d /var/lib/etcd/main/member && echo kept") == "kept")
            let third = try await DeploySandbox.up(builder)
            #expect(third.reports.allSatisfy { $0.ok })
            let value = try LocalProcess.check(["etcdctl", "--endpoints=\(endpoints[2])", "get", "/kept", "--print-value-only"],
                                               environment: ["ETCDCTL_API": "3"])
            #expect(value.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "yes")
            try await DeploySandbox.down(builder, wipe: true)
            #expect(try DeploySandbox.exec("host3", "test -d /var/lib/etcd/main && echo left || echo gone") == "gone")
        }
    }

    @Test func discoveryOnAnotherClusterOfTheInventory() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.discovery)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.map(\.clusterName).sorted() == ["disco", "main"])
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func staticClusterOnEtcd35() async throws {
        try await onSandbox {
            guard FileManager.default.isExecutableFile(atPath: DeploySandbox.etcd35) else {
                Issue.record("etcd 3.5 missing at \(DeploySandbox.etcd35): run scripts/setup.sh (it fetches it)")
                return
            }
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec("host2", "readlink /proc/$(cat /run/etcd/main.pid)/exe") == "/opt/muster/bin/etcd-3.5.16")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func dnsSRVOnEtcd35() async throws {
        try await onSandbox {
            guard FileManager.default.isExecutableFile(atPath: DeploySandbox.etcd35) else {
                Issue.record("etcd 3.5 missing at \(DeploySandbox.etcd35): run scripts/setup.sh (it fetches it)")
                return
            }
            let builder = try DeploySandbox.inventory(.dns, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "  domain: ", with: "  configure_resolvers: true\n  domain: ")
            }
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func preflightFailureChangesNothing() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            // Another process holds host2's client port.
            let listing = "find /etc/etcd /opt/muster /var/lib/etcd 2>/dev/null | sort"
            let before = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, listing) }
            let blockerPid = try DeploySandbox.exec("host2", "setsid python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", 2379)); s.listen(); time.sleep(60)' </dev/null >/dev/null 2>&1 & echo $!")
            defer { _ = try? DeploySandbox.exec("host2", "kill \(blockerPid) 2>/dev/null") }
            for _ in 0..<50 {
                if try DeploySandbox.exec("host2", "cat /proc/net/tcp").contains(":094B") { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("up should have failed preflight")
            } catch let error as DeployError {
                #expect(error.step == "preflight")
                #expect(error.description.contains("host2: port 2379"), "\(error)")
            }
            let after = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, listing) }
            #expect(after == before)
        }
    }

    @Test func aHostWithoutZstdGetsTheBinaryAsIsAndEveryCopyIsExact() async throws {
        try await onSandbox {
            // etcdctl too, which ships only when the inventory names it.
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "  binary: /usr/bin/etcd\n", with: "  binary: /usr/bin/etcd\n  etcdctl: /usr/bin/etcdctl\n")
            }
            for host in ["host1", "host2", "host3"] { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            // Only host2's root loses zstd (the whiteout lands in its own overlay layer).
            _ = try DeploySandbox.exec("host2", "mv /usr/bin/zstd /usr/bin/zstd.hidden-by-test")
            defer { _ = try? DeploySandbox.exec("host2", "mv /usr/bin/zstd.hidden-by-test /usr/bin/zstd") }
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            for (local, remote) in [("/usr/bin/etcd", "/opt/muster/bin/etcd-3.4.23"), ("/usr/bin/etcdctl", "/opt/muster/bin/etcdctl-3.4.23")] {
                let expected = try Digest.sha256Hex(fileAt: local)
                for host in ["host1", "host2", "host3"] {
                    #expect(try DeploySandbox.exec(host, "sha256sum \(remote) | cut -c1-64; stat -c %a \(remote)") == "\(expected)\n755", "\(host):\(remote)")
                }
            }
            // host2 took both binaries as they are, the others their zstd copies: together well
            // under three plain copies, and more than the one plain copy.
            let plain = try ["/usr/bin/etcd", "/usr/bin/etcdctl"].reduce(0) {
                $0 + ((try FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0)
            }
            #expect(outcome.bytesSent > plain)
            #expect(outcome.bytesSent < plain * 2, "sent \(outcome.bytesSent) bytes; three plain copies are \(plain * 3)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A cached zstd copy that does not unpack to the binary (damaged, or altered) is never sent:
    /// it is checked against the binary's sha256 before use and made again.
    @Test func aDamagedCachedCopyIsMadeAgainBeforeItIsSent() async throws {
        try await onSandbox {
            let cache = FileManager.default.temporaryDirectory.appendingPathComponent("muster-cache-\(UUID().uuidString)").path
            setenv("MUSTER_CACHE_DIR", cache, 1)
            defer {
                unsetenv("MUSTER_CACHE_DIR")
                try? FileManager.default.removeItem(atPath: cache)
            }
            let damaged = "\(cache)/binaries/\(try Digest.sha256Hex(fileAt: "/usr/bin/etcd")).zst"
            try FileManager.default.createDirectory(atPath: cache + "/binaries", withIntermediateDirectories: true)
            try Data("not a zstd frame".utf8).write(to: URL(fileURLWithPath: damaged))
            for host in ["host1", "host2", "host3"] { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            let builder = try DeploySandbox.inventory(.static)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            #expect(try Data(contentsOf: URL(fileURLWithPath: damaged)) != Data("not a zstd frame".utf8), "the cache holds a fresh copy")
            let installed = "/opt/muster/bin/etcd-3.4.23"
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "sha256sum \(installed) | cut -d' ' -f1") == (try Digest.sha256Hex(fileAt: "/usr/bin/etcd")), "\(host)")
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func anApplyThatFailsWhileTheBinaryStreamsNamesItsCause() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            for host in ["host1", "host2", "host3"] { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            // A file where muster's binary directory goes: the apply command fails before it
            // reads the binary muster is streaming into it.
            _ = try DeploySandbox.exec("host3", "echo in-the-way > /opt/muster")
            defer { _ = try? DeploySandbox.exec("host3", "rm -f /opt/muster") }
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("up should fail on host3")
            } catch let error as DeployError {
                #expect(error.host == "host3")
                #expect(error.step == "apply")
                #expect(error.description.contains("/opt/muster"), "\(error)")
                #expect(!error.description.contains("cannot write stdin"), "\(error)")
            }
            #expect(try DeploySandbox.exec("host3", "cat /opt/muster") == "in-the-way")
        }
    }

    @Test func aNamedEtcdctlThatIsMissingStopsTheRunBeforeConnecting() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "  binary: /usr/bin/etcd\n", with: "  binary: /usr/bin/etcd\n  etcdctl: /nonexistent/etcdctl\n")
            }
            let before = try hostListings()
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("up should refuse a missing etcdctl")
            } catch let error as InventoryError {
                // Bad input (exit 2), located in the inventory, before any host is contacted.
                #expect(error.description.contains("\(builder.inventoryPath):"), "\(error)")
                #expect(error.description.contains("member.etcdctl /nonexistent/etcdctl is missing"), "\(error)")
            }
            #expect(try hostListings() == before)
        }
    }

    /// Lists what muster could have written on every host, to prove a failed run changed nothing.
    private func hostListings() throws -> [String] {
        try ["host1", "host2", "host3"].map {
            try DeploySandbox.exec($0, "find /etc/etcd /opt/muster /var/lib/etcd /run/etcd 2>/dev/null | sort; ls -la --time-style=+%s /opt/muster/bin 2>/dev/null")
        }
    }

    @Test func foreignDataDirStopsTheRunBeforeAnyChange() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try DeploySandbox.exec("host2", "mkdir -p /var/lib/etcd/main/member/snap && echo keep > /var/lib/etcd/main/member/precious")
            let before = try hostListings()
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("up should refuse a data dir it did not create")
            } catch let error as DeployError {
                #expect(error.step == "preflight")
                #expect(error.description.contains("host2: data dir /var/lib/etcd/main holds data of something muster did not start"), "\(error)")
            }
            #expect(try hostListings() == before)
            #expect(try DeploySandbox.exec("host2", "cat /var/lib/etcd/main/member/precious") == "keep")
        }
    }

    @Test func unreachableHostStopsTheRunBeforeAnyChange() async throws {
        try await onSandbox {
            let state = try DeploySandbox.acquire()
            let prefix = state.hosts[0].address.split(separator: ".").prefix(3).joined(separator: ".")
            // An address in the sandbox's subnet that no host answers on (routed through its bridge).
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "hosts:\n", with: "hosts:\n  ghost: { address: \(prefix).250, ssh: { connect_timeout: 2 } }\n")
                  .replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1, host2, host3, ghost]")
            }
            let before = try hostListings()
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("up should fail to reach the ghost host")
            } catch let error as DeployError {
                #expect(error.step == "connect")
                #expect(error.description.contains("ghost"), "\(error)")
            }
            #expect(try hostListings() == before)
        }
    }

    @Test func discoveryOnAnExternalEtcdURLAndAUsedTokenIsReplaced() async throws {
        try await onSandbox {
            let host1 = try DeploySandbox.host("host1").address
            // The "existing cluster" of the walkthrough: a lone etcd with v2 on host1, brought up by
            // a separate inventory, as an operator's existing etcd would be.
            let backend = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1]")
                  .replacingOccurrences(of: "    tls: false\n", with: "    tls: false\n    etcd: { enable-v2: true }\n")
            }
            _ = try await DeploySandbox.up(backend)
            let main = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host2, host3]")
                  .replacingOccurrences(of: "bootstrap: static", with: "bootstrap: { discovery: { url: http://\(host1):2379, size: 2 } }")
            }
            // Spend the token muster is about to use, as a crashed earlier attempt would have.
            let planned = try main.build()
            let discovery = try #require(planned.plan.clusters.first?.discovery)
            let spent = try LocalProcess.check(["curl", "-sS", "-X", "PUT", "\(discovery.url)/0123456789abcdef",
                                                "-d", "value=ghost=http://10.255.255.1:2380"])
            #expect(spent.stdoutText.contains("\"action\":\"set\""), "\(spent.stdoutText)")
            let outcome = try await DeploySandbox.up(main)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            let tokens = try main.build().state.discoveryTokens()
            #expect(tokens["main"]?.token != discovery.token, "a used token must be replaced")
            #expect(tokens["main"]?.formed == true)
            // Formed: a re-run neither replaces the token nor touches anything.
            let again = try await DeploySandbox.up(main)
            #expect(again.bytesSent == 0)
            #expect(try main.build().state.discoveryTokens()["main"]?.token == tokens["main"]?.token)
            try await DeploySandbox.down(main, wipe: true)
            try await DeploySandbox.down(backend, wipe: true)
        }
    }

    @Test func configChangesRollThroughRestartsAndBootstrapChangesAreRefused() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try await DeploySandbox.up(builder)
            let path = builder.inventoryPath
            let original = try String(contentsOfFile: path, encoding: .utf8)
            // A setting etcd honours on restart: written, then members restarted one at a time.
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            try original.replacingOccurrences(of: "    tls: false\n", with: "    tls: false\n    etcd: { heartbeat-interval: 150, election-timeout: 1500 }\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let rolled = try await DeploySandbox.up(builder)
            #expect(rolled.reports.allSatisfy { $0.ok }, "\(rolled.reports.map { $0.table() })")
            // A backup first, left in the state dir's snapshots/before-change/ and named in the outcome.
            #expect(rolled.backups.count == 1, "\(rolled.backups)")
            #expect(rolled.backups.allSatisfy { $0.contains("/snapshots/before-change/main-") && FileManager.default.fileExists(atPath: $0) }, "\(rolled.backups)")
            for (index, host) in ["host1", "host2", "host3"].enumerated() {
                #expect(try DeploySandbox.exec(host, "cat /run/etcd/main.pid") != pids[index], "\(host) was not restarted")
                #expect(try DeploySandbox.exec(host, "grep -c 'heartbeat-interval: 150' /etc/etcd/main/conf.yml") == "1")
            }
            // A setting etcd ignores once it has data (the cluster token): refused, nothing written.
            let before = try DeploySandbox.exec("host1", "sha256sum /etc/etcd/main/conf.yml")
            try original.replacingOccurrences(of: "    tls: false\n", with: "    tls: false\n    token: another-token\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("a change etcd ignores should be refused")
            } catch let error as DeployError {
                // The cluster record keeps the IDs it formed with, so the refusal comes from the
                // config check (before it, preflight's marker check when no record exists).
                #expect(error.step == "config", "\(error)")
                #expect(error.kind == .refused, "\(error)")
                #expect(error.description.contains("initial-cluster-token") && error.description.contains("nothing was written"), "\(error)")
            }
            #expect(try DeploySandbox.exec("host1", "sha256sum /etc/etcd/main/conf.yml") == before)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
