import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// `--cluster NAME` means NAME: a formed cluster no longer needs the backend it discovered
/// through, so `down` and `verify` of it leave the backend alone; and every `--output json` is
/// one object with a `clusters` array.
@Suite struct ClusterScopeTests {
    @Test func clusterMeansThatClusterForDownAndVerifyAndJSONHasOneShape() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.discovery)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.count == 2 && formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let backendPid = try DeploySandbox.exec("host1", "cat /run/etcd/disco.pid")

            // verify --cluster main: one object, one cluster, whatever the inventory holds.
            let verified = try MusterCLI.run(["verify", builder.inventoryPath, "--cluster", "main", "--output", "json"])
            #expect(verified.status == 0, "\(verified.stderrText)")
            let document = try JSONSerialization.jsonObject(with: verified.stdout) as? [String: Any]
            #expect(document?["ok"] as? Bool == true)
            #expect((document?["clusters"] as? [[String: Any]])?.map { $0["cluster"] as? String } == ["main"], "\(verified.stdoutText)")

            // The backend down: main, formed, still verifies on its own.
            try await TearDown(builder: { var b = builder; b.cluster = "disco"; return b }(), options: DeploySandbox.options, progress: Progress(quiet: true)).run()
            let alone = try MusterCLI.run(["verify", builder.inventoryPath, "--cluster", "main", "--output", "json"])
            #expect(alone.status == 0, "main must not need its backend once formed: \(alone.stdoutText) \(alone.stderrText)")
            let upAgain = try await DeploySandbox.up(builder)
            #expect(upAgain.reports.allSatisfy { $0.ok })

            // down --cluster main stops main's members and leaves the backend running.
            let newBackendPid = try DeploySandbox.exec("host1", "cat /run/etcd/disco.pid")
            #expect(newBackendPid != backendPid)
            let down = try MusterCLI.run(["down", builder.inventoryPath, "--cluster", "main"])
            #expect(down.status == 0, "\(down.stderrText)")
            #expect(try DeploySandbox.exec("host1", "cat /run/etcd/disco.pid") == newBackendPid, "the backend was stopped too")
            #expect(try DeploySandbox.exec("host2", "cat /run/etcd/main.pid 2>/dev/null || echo stopped") == "stopped")

            // up --output json: the same envelope, with what changed per host.
            let up = try MusterCLI.run(["up", builder.inventoryPath, "--output", "json"])
            #expect(up.status == 0, "\(up.stderrText)")
            let upDocument = try JSONSerialization.jsonObject(with: up.stdout) as? [String: Any]
            #expect((upDocument?["clusters"] as? [Any])?.count == 2)
            let hosts = upDocument?["hosts"] as? [[String: Any]] ?? []
            #expect(hosts.contains { ($0["started"] as? [String]) == ["main"] }, "\(up.stdoutText)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
