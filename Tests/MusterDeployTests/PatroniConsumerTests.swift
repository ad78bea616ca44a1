import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// A real consumer of a cluster muster made: Patroni 3 (Debian's package) with PostgreSQL 15, in
/// host1's network namespace (on the controller's filesystem, as the user postgres), configured
/// only from `muster client-cert --out` and `muster env --for patroni`. It elects itself primary
/// through etcd's v3 gateway over TLS, and a rolling restart of every etcd member (a config change
/// `muster up` rolls out) leaves it primary: same timeline, same postmaster.
@Suite struct PatroniConsumerTests {
    static let restPort = 18008
    static let scope = "muster-test"

    /// Patroni's own view (`GET /patroni` on its REST API), nil while it does not answer.
    private func patroniState(_ address: String) throws -> [String: Any]? {
        let result = try LocalProcess.run(["/usr/bin/curl", "-sf", "--max-time", "2", "http://\(address):\(Self.restPort)/patroni"], timeout: 10)
        guard result.status == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
    }

    /// Waits (bounded) for Patroni to say what `condition` wants.
    private func waitForPatroni(_ address: String, seconds: Int, log: String,
                                until condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        // A deadline, not a count: each question may take up to curl's 2 s, so a count of
        // polls waited up to nine times the bound it names.
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let state = try patroniState(address), condition(state) { return state }
            try await Task.sleep(for: .milliseconds(250))
        }
        let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(3000)) } ?? "(no log)"
        throw SandboxError("Patroni did not get there within \(seconds) s; last state \(String(describing: try patroniState(address))); its log:\n\(tail)")
    }

    private func leaderKey(_ inventory: String) throws -> String {
        let exports = try MusterCLI.run(["env", inventory])
        #expect(exports.status == 0, "\(exports.stderrText)")
        let etcdctl = (DeploySandbox.etcdSid as NSString).deletingLastPathComponent + "/etcdctl"
        let result = try LocalProcess.run(["/bin/sh", "-c", exports.stdoutText + "\n exec \(etcdctl) --command-timeout=5s get /service/\(Self.scope)/leader --print-value-only"], timeout: 30)
        #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func patroniKeepsItsPrimaryThroughARollingRestartOfEtcd() async throws {
        for tool in ["/usr/bin/patroni", "/usr/lib/postgresql/15/bin/postgres", "/usr/bin/curl"] {
            #expect(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: scripts/setup.sh installs it")
            guard FileManager.default.isExecutableFile(atPath: tool) else { return }
        }
        try await onSandbox {
            let builder = try await DeploySandbox.formedTLSCluster(binary: DeploySandbox.etcd35).builder
            let inventory = builder.inventoryPath
            let host1 = try DeploySandbox.host("host1")

            // A directory the postgres user can reach: its parents must let it through.
            let work = "/tmp/muster-patroni-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            var patroni: Process?
            defer {
                if let patroni { ChildProcesses.forceStop(patroni, seconds: 20) }
                _ = try? LocalProcess.run(["/usr/bin/pkill", "-9", "-u", "postgres", "-f", work], timeout: 10)
                try? FileManager.default.removeItem(atPath: work)
            }
            let issued = try MusterCLI.run(["client-cert", inventory, "--name", "patroni", "--out", work + "/pki"])
            #expect(issued.status == 0, "\(issued.stderrText)")
            let section = try MusterCLI.run(["env", inventory, "--for", "patroni", "--cert-dir", work + "/pki"])
            #expect(section.status == 0 && section.stdoutText.hasPrefix("etcd3:\n"), "\(section.stdoutText)\(section.stderrText)")
            let configuration = """
                scope: \(Self.scope)
                name: pg1
                restapi:
                  listen: \(host1.address):\(Self.restPort)
                  connect_address: \(host1.address):\(Self.restPort)
                bootstrap:
                  dcs: { ttl: 30, loop_wait: 2, retry_timeout: 10 }
                  initdb: [{encoding: UTF8}]
                postgresql:
                  listen: 127.0.0.1:15432
                  connect_address: 127.0.0.1:15432
                  data_dir: \(work)/data
                  bin_dir: /usr/lib/postgresql/15/bin
                  pgpass: \(work)/pgpass
                  authentication:
                    superuser: { username: postgres, password: muster-test }
                    replication: { username: replicator, password: muster-test }

                """ + section.stdoutText
            try Data(configuration.utf8).write(to: URL(fileURLWithPath: work + "/patroni.yml"))
            let chown = try LocalProcess.run(["/bin/chown", "-R", "postgres:postgres", work], timeout: 10)
            #expect(chown.status == 0, "\(chown.stderrText)")

            patroni = try ChildProcesses.start("/usr/bin/ip", ["netns", "exec", host1.namespace, "/usr/sbin/runuser", "-u", "postgres", "--",
                                                               "/usr/bin/patroni", work + "/patroni.yml"], logPath: work + "/patroni.log")
            let primary = try await waitForPatroni(host1.address, seconds: 90, log: work + "/patroni.log") {
                $0["role"] as? String == "master" && $0["state"] as? String == "running"
            }
            // Patroni reports its role from its own loop; the key follows within a loop_wait.
            var leader = ""
            for _ in 0..<40 where leader != "pg1" {
                leader = try leaderKey(inventory)
                if leader != "pg1" { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(leader == "pg1", "Patroni's leader key in etcd names it: \(leader)")

            // A config change: muster restarts the three members one at a time.
            let text = try String(contentsOfFile: inventory, encoding: .utf8)
            try Data(text.replacingOccurrences(of: "    tls: true\n", with: "    tls: true\n    etcd: { heartbeat-interval: 120, election-timeout: 1200 }\n").utf8)
                .write(to: URL(fileURLWithPath: inventory))
            let restarted = try MusterCLI.run(["up", inventory, "--no-backup"], timeout: 180)
            #expect(restarted.status == 0, "\(restarted.stdoutText)\(restarted.stderrText)")
            #expect((restarted.stdoutText + restarted.stderrText).components(separatedBy: "step rolling-restart").count - 1 == 3, "\(restarted.stdoutText)\(restarted.stderrText)")
            let restartEnded = Date().timeIntervalSince1970

            // Patroni has been through etcd since the last member came back, and is still primary.
            let after = try await waitForPatroni(host1.address, seconds: 60, log: work + "/patroni.log") {
                (($0["dcs_last_seen"] as? Double) ?? 0) > restartEnded + 1
            }
            #expect(after["role"] as? String == "master", "\(after)")
            #expect(after["timeline"] as? Int == primary["timeline"] as? Int, "no failover: \(primary) -> \(after)")
            #expect(after["postmaster_start_time"] as? String == primary["postmaster_start_time"] as? String, "PostgreSQL kept running")
            let leaderAfter = try leaderKey(inventory)
            #expect(leaderAfter == "pg1", "\(leaderAfter)")
            if let process = patroni { ChildProcesses.stop(process); patroni = nil }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
