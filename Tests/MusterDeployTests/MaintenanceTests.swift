import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// `muster defrag` and alarms on a TLS cluster of the deploy sandbox: defragmentation one member
/// at a time with the leader last, `verify` naming a raised alarm, `up` refusing to change a
/// cluster under one with nothing changed, and going on once it is disarmed; `down --wipe-data`
/// stopping and wiping each member in one command.
@Suite struct MaintenanceTests {
    private static let hosts = ["host1", "host2", "host3"]

    /// Each host's member pid and the hash of its conf.yml: what a refused run must leave alone.
    private func hostState() throws -> [String] {
        try Self.hosts.map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid; sha256sum < /etc/etcd/main/conf.yml") }
    }

    @Test func defragRunsLeaderLastAndAnAlarmStopsUpUntilDisarmed() async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster()
            let tls = EtcdTLS(caPath: "\(pki)/ca.crt", certPath: "\(pki)/client.crt", keyPath: "\(pki)/client.key")
            let clients = try Self.hosts.map { EtcdClient(baseURL: "https://\(try DeploySandbox.host($0).address):2379", timeout: 20, tls: tls) }

            // Space that only a defragment gives back: 12 MB written, deleted, compacted away.
            let blob = String(repeating: "d", count: 100_000)
            var revision: Int64 = 0
            for i in 0..<120 { revision = try await clients[0].put("/frag/\(i)", blob).header.revision }
            for i in 0..<120 { revision = try await clients[0].delete("/frag/\(i)").header.revision }
            try await clients[0].put("/kept", "yes")
            try await clients[0].compact(revision: revision)
            var leaderBefore = ""
            for (index, client) in clients.enumerated() where try await client.status().isLeader { leaderBefore = Self.hosts[index] }

            // The dry run lists the steps the run then reports, line for line (and defragments
            // nothing: the run below still finds every database over 10 MB).
            let dryRun = try MusterCLI.run(["defrag", builder.inventoryPath, "--dry-run"])
            #expect(dryRun.succeeded && dryRun.stdoutText.isEmpty, "\(dryRun.stderrText)")
            let planned = MembershipTests.Lines.steps(in: dryRun.stderrText.components(separatedBy: "\n"))
            #expect(planned.count == 3 && planned.last?.hasPrefix("cluster main, step defragment: defragment \(leaderBefore) ") == true, "\(planned)")
            let defrag = try MusterCLI.run(["defrag", builder.inventoryPath, "--output", "json"])
            #expect(defrag.succeeded, "\(defrag.stderrText)")
            let said = MembershipTests.Lines.steps(in: defrag.stderrText.components(separatedBy: "\n"))
            #expect(planned == said, "dry run: \(planned)\nrun: \(said)")
            let document = try #require(try JSONSerialization.jsonObject(with: defrag.stdout) as? [String: Any])
            let rows = try #require(((document["clusters"] as? [[String: Any]])?.first?["members"]) as? [[String: Any]])
            #expect(rows.compactMap { $0["name"] as? String }.sorted() == Self.hosts)
            #expect(rows.last?["name"] as? String == leaderBefore, "the leader goes last: \(rows)")
            for row in rows {
                let before = try #require(row["db_size_before"] as? Int), after = try #require(row["db_size_after"] as? Int)
                #expect(after < before && before > 10_000_000, "\(row)")
            }
            #expect(try await clients[1].get("/kept").kvs.first?.value == "yes")

            // An alarm raised on host2's member: verify names it, up refuses to change anything.
            let host2ID = try await clients[1].status().memberID
            try await clients[0].alarm(.activate, "NOSPACE", memberID: host2ID)
            let verify = try MusterCLI.run(["verify", builder.inventoryPath])
            #expect(verify.status == 1, "\(verify.stdoutText)")
            #expect(verify.stdoutText.contains("NOSPACE on host2"), "\(verify.stdoutText)")
            let inventory = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try inventory.replacingOccurrences(of: "    members: [host1, host2, host3]\n", with: "    members: [host1, host2, host3]\n    etcd: { snapshot-count: 5000 }\n")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let before = try hostState()
            let refused = try MusterCLI.run(["up", builder.inventoryPath])
            #expect(refused.status == 1, "\(refused.stderrText)")
            #expect(refused.stderrText.contains("active alarm (NOSPACE on host2)"), "\(refused.stderrText)")
            #expect(try hostState() == before, "a refused run changed a host")

            // Disarmed: the same change goes through.
            try await clients[0].alarm(.deactivate, "NOSPACE", memberID: host2ID)
            let changed = try await DeploySandbox.up(builder)
            #expect(changed.reports.allSatisfy { $0.ok }, "\(changed.reports.map { $0.table() })")
            #expect(changed.hosts.flatMap(\.restarted).count == 3)

            // down --wipe-data: each member stopped and wiped by one command on its host (one
            // line each, no separate stop), its data gone.
            let events = MembershipTests.Lines()
            var tearDown = TearDown(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { event in
                if !event.host.isEmpty { events.add("\(event.host) \(event.step): \(event.message)") }
            }))
            tearDown.wipeData = true
            try await tearDown.run()
            let commands = events.all.filter { $0.contains(" stop: ") || $0.contains(" wipe: ") }
            #expect(commands.count == 3 && commands.allSatisfy { $0.contains(" wipe: main: ") && $0.contains("stopped; ") && $0.contains("data wiped") },
                    "\(events.all)")
            for host in Self.hosts { #expect(try DeploySandbox.exec(host, "ls -d /var/lib/etcd/main 2>/dev/null | wc -l") == "0") }
        }
    }
}
