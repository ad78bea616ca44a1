import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// muster killed (SIGKILL, through `MUSTER_FAILPOINT`) at named phases of `up`: the next `up`
/// converges to a verified cluster and no key written before is lost.
@Suite struct FailpointTests {
    /// The built CLI, killed at `phase`; returns what it printed.
    private func upKilled(at phase: String, _ builder: PlanBuilder) throws -> String {
        let binary = repositoryRoot + "/.build/debug/muster"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SandboxError("\(binary) is missing: `swift build` first (this test runs the CLI)")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_SANDBOX_ONLY"] = "1"
        environment["MUSTER_FAILPOINT"] = phase
        let result = try LocalProcess.run([binary, "up", builder.inventoryPath, "--templates", repositoryRoot + "/templates"],
                                          environment: environment, timeout: 120)
        #expect(!result.succeeded, "up should have been killed at \(phase)")
        #expect(result.stderrText.contains("failpoint \(phase.split(separator: "@")[0])"), "\(result.stderrText)")
        return result.stderrText
    }

    private func etcdctl(_ arguments: [String]) throws -> ProcessResult {
        let endpoints = try ["host1", "host2", "host3"].map { "http://\(try DeploySandbox.host($0).address):2379" }
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s"] + arguments,
                                    environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    @Test func upKilledBetweenMemberStartsAndDuringARollingRestartConvergesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try upKilled(at: "up.between-member-starts@1", builder)
            let resumed = try await DeploySandbox.up(builder)
            #expect(resumed.reports.allSatisfy { $0.ok }, "\(resumed.reports.map { $0.table() })")

            #expect(try etcdctl(["put", "/written-before", "kept"]).succeeded)
            // A config change etcd applies at restart: every member is restarted, one at a time;
            // the run dies after the first.
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "    members: [host1, host2, host3]\n", with: "    members: [host1, host2, host3]\n    etcd: { snapshot-count: 5000 }\n")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            _ = try upKilled(at: "up.rolling-restart@2", builder)
            let finished = try await DeploySandbox.up(builder)
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            #expect(finished.hosts.flatMap(\.restarted).count == 2, "the two members not yet restarted are, the first is not again: \(finished.hosts)")
            #expect(try etcdctl(["get", "/written-before", "--print-value-only"]).stdoutText == "kept\n")
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "grep -c 'snapshot-count' /etc/etcd/main/conf.yml") == "1")
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
