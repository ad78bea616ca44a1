import Foundation
import Testing
import MusterBasics
import MusterEtcd
import MusterWorkspace
import MusterSandbox

/// `muster restore --from-member HOST`: two of three members lose their data, and the cluster is
/// rebuilt from the database of the one that survived, every key it had back; a cluster with
/// quorum is refused with nothing changed.
@Suite struct MemberRecoveryTests {
    @Test func aClusterThatLostTwoOfThreeMembersIsRebuiltFromTheSurvivorOnEtcd35() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let inventory = builder.inventoryPath
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok })
            let host1 = try DeploySandbox.host("host1")
            let client = EtcdClient(baseURL: "http://\(host1.address):2379", timeout: 20)
            for index in 0..<200 { _ = try await client.put("/recover/\(index)", "value-\(index)") }

            // Quorum intact: refused, every member still running as before.
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            let refused = try MusterCLI.run(["restore", inventory, "--from-member", "host1"])
            #expect(refused.status == 1 && refused.stderrText.contains("has quorum") && refused.stderrText.contains("nothing was changed"), "\(refused.stderrText)")
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } == pids)

            // Two members and their data lost: no quorum, no snapshot newer than the survivor's data.
            for host in ["host2", "host3"] {
                _ = try DeploySandbox.exec(host, "kill -9 $(cat /run/etcd/main.pid); rm -rf /var/lib/etcd/main")
            }
            // Cut once the first member's data was restored (the survivor's own moved aside): the
            // next run goes on from the copy the first one kept.
            let cut = try MusterCLI.run(["restore", inventory, "--from-member", "host1"], failpoint: "restore.after-first-member", timeout: 300)
            #expect(cut.status != 0, "the failpoint stops the run: \(cut.stderrText)")
            let recovered = try MusterCLI.run(["restore", inventory, "--from-member", "host1"], timeout: 300)
            #expect(recovered.status == 0, "\(recovered.stdoutText)\(recovered.stderrText)")
            let state = try builder.build().state.directory
            // Each run keeps the copy it made (the cut one's too): never deleted, owner-only.
            let copies = try FileManager.default.contentsOfDirectory(atPath: state + "/snapshots/recovered")
            #expect(!copies.isEmpty && copies.allSatisfy { $0.hasPrefix("main-from-host1-") }, "\(copies)")
            for copy in copies {
                let mode = try FileManager.default.attributesOfItem(atPath: state + "/snapshots/recovered/" + copy)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(copy)")
            }

            // Every key the survivor had, through each member alone.
            for host in ["host1", "host2", "host3"] {
                let member = EtcdClient(baseURL: "http://\(try DeploySandbox.host(host).address):2379", timeout: 20)
                for index in [0, 99, 199] {
                    let got = try await member.get("/recover/\(index)")
                    #expect(got.kvs.first?.value == "value-\(index)", "\(host): /recover/\(index)")
                }
            }
            let again = try MusterCLI.up(builder)
            #expect(again.status == 0 && !(again.stdoutText + again.stderrText).contains("step "), "a re-run changes nothing: \(again.stdoutText)\(again.stderrText)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
