import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterPlan
import MusterWorkspace
import MusterSandbox

/// `muster verify` on real clusters in the deploy sandbox.
@Suite struct VerifyTests {
    private func verify(_ builder: PlanBuilder, viaSSH: Bool = false) async throws -> VerificationReport {
        let built = try builder.build()
        let reports = try await Verification.run(workspace: built,
                                                 options: DeploySandbox.options, viaSSH: viaSSH,
                                                 progress: Progress(quiet: true))
        return try #require(reports.first)
    }

    private func etcdctl(_ arguments: [String]) throws -> String {
        try LocalProcess.check(["etcdctl"] + arguments, environment: ["ETCDCTL_API": "3"]).stdoutText
    }

    @Test func agreesWithEtcdctlAndReportsStoppedAndUnknownMembers() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try await DeploySandbox.up(builder)
            let endpoints = try ["host1", "host2", "host3"].map { "http://\(try DeploySandbox.host($0).address):2379" }
            let report = try await verify(builder)
            #expect(report.ok, "\(report.table())")

            // `etcdctl member list` prints `hexid, started, name, peers, clients, learner`.
            let listed = try etcdctl(["--endpoints=\(endpoints[0])", "member", "list"])
                .split(separator: "\n").map { $0.components(separatedBy: ", ") }
            #expect(Set(listed.map { $0[0] }) == Set(report.members.map { EtcdIDs.hex($0.id) }))
            #expect(Set(listed.map { $0[2] }) == ["host1", "host2", "host3"])
            // `endpoint status`: `endpoint, id, version, size, leader, learner, term, index, applied, errors`.
            let status = try etcdctl(["--endpoints=\(endpoints.joined(separator: ","))", "endpoint", "status"])
                .split(separator: "\n").map { $0.components(separatedBy: ", ") }
            let etcdctlLeader = try #require(status.first { $0[4] == "true" })[1]
            let musterLeader = try #require(report.endpoints.first { $0.isLeader })
            #expect(EtcdIDs.hex(try #require(musterLeader.id)) == etcdctlLeader)
            #expect(Set(status.map { $0[6] }) == Set(report.endpoints.map { String($0.raftTerm) }))

            // A member added by hand, outside the inventory, is reported (and the exit code is 1).
            // etcd refuses reconfiguration for its first seconds ("unhealthy cluster"): retry, bounded.
            var stranger = ""
            for _ in 0..<30 {
                if let added = try? etcdctl(["--endpoints=\(endpoints[0])", "member", "add", "stranger",
                                             "--peer-urls=http://10.255.255.1:2380", "--learner"]) {
                    stranger = added
                    break
                }
                try await Task.sleep(nanoseconds: 500_000_000)
            }
            // `Member 8e9e05c52164694d added to cluster ...`: hex without leading zeros, so not always 16 long.
            let words = stranger.split(separator: " ").map(String.init)
            let strangerID = try #require(words.firstIndex(of: "Member").flatMap { words.indices.contains($0 + 1) ? words[$0 + 1] : nil },
                                          "no member ID in: \(stranger)")
            let withStranger = try await verify(builder)
            #expect(!withStranger.ok && withStranger.exitCode == 1)
            #expect(withStranger.checks.contains { $0.name == "no-unknown-members" && !$0.ok })
            _ = try etcdctl(["--endpoints=\(endpoints[0])", "member", "remove", strangerID])

            // A stopped member is reported, by name.
            // Gone, not just told to go (bounded: 5 s).
            _ = try DeploySandbox.exec("host3", "p=$(cat /run/etcd/main.pid); kill $p; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done")
            let stopped = try await verify(builder)
            #expect(stopped.exitCode == 1)
            let failed = stopped.checks.filter { !$0.ok }
            #expect(failed.contains { $0.detail.contains("host3") }, "\(failed)")
            #expect(stopped.orderedChecks.first.map { !$0.ok } == true, "failed checks come first")

            // JSON has the documented shape.
            let json = try #require(try JSONSerialization.jsonObject(with: Data(stopped.json().utf8)) as? [String: Any])
            for key in ["cluster", "cluster_id", "observed_cluster_id", "cluster_version", "ok", "members", "endpoints", "health", "checks"] {
                #expect(json.keys.contains(key), "missing \(key)")
            }
            #expect(json["ok"] as? Bool == false)
            let checks = try #require(json["checks"] as? [[String: Any]])
            #expect(checks.allSatisfy { $0["name"] is String && $0["ok"] is Bool && $0["detail"] is String })
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func viaSSHOnAClusterServingClientsOnLoopbackOnly() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: false\n    client_listen: loopback\n")
            }
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            // Nothing answers on the member's address: clients are on its loopback only.
            let address = try DeploySandbox.host("host1").address
            let direct = try? await EtcdClient(baseURL: "http://\(address):2379", timeout: 2).health()
            #expect(direct == nil)
            let report = try await verify(builder, viaSSH: true)
            #expect(report.ok, "\(report.table())")
            #expect(report.endpoints.allSatisfy { $0.endpoint == "http://127.0.0.1:2379" })
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
