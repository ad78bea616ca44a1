import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterWorkspace
import MusterSandbox

/// A restore founds the cluster again (issue 34, item 2): after it, the cluster record and every
/// member's conf.yml describe the restored members, so `up` can still manage the cluster.
@Suite struct RestoreFoundingTests {
    private func setMembers(_ members: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"members: \[[^\]]*\]"#, with: "members: [\(members)]", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    private func pids(_ hosts: [String]) throws -> [String] {
        try hosts.map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
    }

    /// Each member's conf.yml names exactly `members` in its initial-cluster and the restore's
    /// token; a plain `up` then writes nothing, starts and restarts nothing.
    private func expectManageable(_ builder: PlanBuilder, members: [String], token: String) async throws {
        for host in members {
            let conf = try DeploySandbox.exec(host, "cat /etc/etcd/main/conf.yml")
            let line = conf.split(separator: "\n").first { $0.hasPrefix("initial-cluster: ") } ?? ""
            let named = line.dropFirst("initial-cluster: ".count).split(separator: ",").map { String($0.split(separator: "=")[0]) }
            #expect(named == members, "\(host): \(conf)")
            #expect(conf.contains("initial-cluster-token: \(token)\n") && conf.contains("initial-cluster-state: new\n"), "\(host): \(conf)")
            // The marker names this state and the incarnation, as `up` writes it.
            let marker = try DeploySandbox.exec(host, "cat /etc/etcd/main/member.id").split(separator: "\n")
            #expect(marker.count == 3 && marker[1].hasPrefix("incarnation ") && marker[2].hasPrefix("state "), "\(host): \(marker)")
        }
        let running = try pids(members)
        let again = try await DeploySandbox.up(builder)
        #expect(again.reports.allSatisfy { $0.ok }, "\(again.reports.map { $0.table() })")
        #expect(!again.changed && again.bytesSent == 0, "\(again.hosts)")
        #expect(again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(again.hosts)")
        #expect(try pids(members) == running, "a member restarted after the restore")
    }

    private func restore(_ builder: PlanBuilder, from file: String) async throws -> Restore.Outcome {
        var restore = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(), snapshot: file)
        restore.force = true
        let restored = try #require(try await restore.run())
        #expect(restored.report.ok, "\(restored.report.table())")
        return restored
    }

    /// Grown 2 -> 3, restored (cut by a Ctrl-C after the members stopped, finished by the next
    /// run); shrunk to 2 and restored; host2 replaced and restored; each time `up` changes
    /// nothing afterwards, and at the end a grow to host4 works. Keys come back each time.
    /// Then `down --purge --cluster main` leaves nothing of the cluster on the hosts.
    @Test func restoreAfterAGrowAShrinkAndAReplaceLeavesAClusterUpManages() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, hosts: 4)
            try setMembers("host1, host2", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let client = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host1").address):2379", timeout: 10)
            _ = try await client.put("/restore/kept", "in the snapshot")
            try setMembers("host1, host2, host3", in: builder)
            let grown = try await DeploySandbox.up(builder)
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            let saved = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress()).run())
            _ = try await client.put("/restore/after", "not in the snapshot")

            // After the grow; a Ctrl-C once every member stopped ends the run at the next step.
            let cut = try MusterCLI.run(["restore", builder.inventoryPath, "--from", saved.snapshot.file, "--force"],
                                        failpoint: "restore.after-stop:int")
            #expect(cut.status == 130 && cut.stderrText.contains("stopped before"), "\(cut.status) \(cut.stderrText)")
            #expect(try DeploySandbox.exec("host1", "cat /run/etcd/main.pid 2>/dev/null || echo stopped") == "stopped")
            let resumed = try MusterCLI.run(["restore", builder.inventoryPath, "--from", saved.snapshot.file])
            #expect(resumed.succeeded, "\(resumed.stdoutText) \(resumed.stderrText)")
            var token = try #require(try builder.build().state.clusterRecord("main")?.restoreToken)
            try await expectManageable(builder, members: ["host1", "host2", "host3"], token: token)
            #expect(try await client.get("/restore/kept").kvs.first?.value == "in the snapshot")
            #expect(try await client.get("/restore/after").kvs.isEmpty)

            // After a shrink.
            try setMembers("host1, host2", in: builder)
            var shrink = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress())
            shrink.removeMembers = true
            let shrunk = try await shrink.run()
            #expect(shrunk.reports.allSatisfy { $0.ok }, "\(shrunk.reports.map { $0.table() })")
            token = try await restore(builder, from: saved.snapshot.file).token
            try await expectManageable(builder, members: ["host1", "host2"], token: token)
            #expect(try builder.build().state.clusterRecord("main")?.removed.map(\.name) == ["host3"],
                    "the removed member stays recorded (its data is still on host3)")

            // After a replace.
            var scoped = builder
            scoped.cluster = "main"
            let replaced = try #require(try await Replace(builder: scoped, member: "host2", options: DeploySandbox.options, progress: Progress()).run())
            #expect(replaced.ok, "\(replaced.table())")
            token = try await restore(builder, from: saved.snapshot.file).token
            try await expectManageable(builder, members: ["host1", "host2"], token: token)
            #expect(try await client.get("/restore/kept").kvs.first?.value == "in the snapshot")
            #expect(try builder.build().state.clusterRecord("main")?.removed.map(\.name) == ["host3"],
                    "host2's replaced incarnation is no removed member: host2 is a member again")

            // A grow afterwards.
            try setMembers("host1, host2, host4", in: builder)
            let regrown = try await DeploySandbox.up(builder)
            #expect(regrown.reports.allSatisfy { $0.ok }, "\(regrown.reports.map { $0.table() })")
            #expect(regrown.hosts.first { $0.host == "host4" }?.started == ["main"], "\(regrown.hosts)")
            #expect(try await EtcdClient(baseURL: "http://\(try DeploySandbox.host("host4").address):2379", timeout: 10)
                .get("/restore/kept").kvs.first?.value == "in the snapshot")

            // Purge (issue 34, item 6): refused unless the cluster is named, nothing changed;
            // then nothing of main is left on any host: data, the copies three restores and a
            // replace moved aside, host3's data as a removed member, keys, config, units, logs,
            // binaries.
            let hosts = ["host1", "host2", "host3", "host4"]
            let leftovers = "for d in /var/lib/etcd /etc/etcd /var/log/etcd /run/etcd /opt/muster/bin; do find \"$d\" -mindepth 1 2>/dev/null; done; ls /etc/systemd/system/etcd-main.service 2>/dev/null; true"
            let before = try hosts.map { try DeploySandbox.exec($0, leftovers) }
            #expect(before[1].contains("main.muster-replaced-") && before[0].contains("main.muster-before-restore-") && before[2].contains("/var/lib/etcd/main/member"),
                    "the scenario left copies and a removed member's data: \(before)")
            let running = try pids(["host1", "host2", "host4"])
            let unnamed = try MusterCLI.run(["down", builder.inventoryPath, "--purge"])
            #expect(unnamed.status == 2 && unnamed.stderrText.contains("--cluster"), "\(unnamed.status) \(unnamed.stderrText)")
            #expect(try pids(["host1", "host2", "host4"]) == running)
            #expect(try hosts.map { try DeploySandbox.exec($0, leftovers) } == before)
            let purged = try MusterCLI.run(["down", builder.inventoryPath, "--purge", "--cluster", "main"])
            #expect(purged.succeeded, "\(purged.stdoutText) \(purged.stderrText)")
            for host in hosts {
                let left = try DeploySandbox.exec(host, leftovers)
                #expect(left == "", "\(host) still holds: \(left)")
            }
            #expect(try builder.build().state.clusterRecord("main") == nil)
            try? FileManager.default.removeItem(atPath: (saved.snapshot.file as NSString).deletingLastPathComponent)
        }
    }
}
