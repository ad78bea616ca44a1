import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// Membership after day one: a member the inventory adds joins a formed cluster as a learner,
/// is promoted once in sync, and no acknowledged write is lost while it happens.
@Suite struct MembershipTests {
    private func etcdctl(_ hosts: [String], _ arguments: [String]) throws -> ProcessResult {
        let endpoints = try hosts.map { "http://\(try DeploySandbox.host($0).address):2379" }
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s",
                                     "--command-timeout=5s"] + arguments, environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    private func setMembers(_ members: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"members: \[[^\]]*\]"#, with: "members: [\(members)]", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    @Test func aStaticClusterGrowsThroughALearnerWhileAClientWrites() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            try setMembers("host1, host2", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let founders = try ["host1", "host2"].map { try DeploySandbox.exec($0, "cat /etc/etcd/main/conf.yml") }

            // A writer through the founders for the whole change; every acknowledged key must
            // be readable afterwards.
            let writer = Task.detached { () -> [String] in
                var acknowledged: [String] = []
                for index in 0..<400 {
                    if Task.isCancelled { break }
                    let key = "/grow/\(index)"
                    if (try? etcdctl(["host1", "host2"], ["put", key, "v\(index)"]))?.succeeded == true { acknowledged.append(key) }
                }
                return acknowledged
            }
            try setMembers("host1, host2, host3", in: builder)
            let grown = try await DeploySandbox.up(builder)
            writer.cancel()
            let acknowledged = await writer.value
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            #expect(grown.hosts.first { $0.host == "host3" }?.started == ["main"], "\(grown.hosts)")
            #expect(grown.hosts.allSatisfy { $0.restarted.isEmpty }, "no founder restarts: \(grown.hosts)")
            // The founders' files are as they formed; the newcomer joined an existing cluster.
            #expect(try ["host1", "host2"].map { try DeploySandbox.exec($0, "cat /etc/etcd/main/conf.yml") } == founders)
            let joined = try DeploySandbox.exec("host3", "cat /etc/etcd/main/conf.yml")
            #expect(joined.contains("initial-cluster-state: existing"), "\(joined)")
            #expect(joined.contains("host3="), "\(joined)")

            let list = try etcdctl(["host1"], ["member", "list", "-w", "json"])
            let members = try JSONSerialization.jsonObject(with: list.stdout) as? [String: Any]
            let entries = members?["members"] as? [[String: Any]] ?? []
            #expect(entries.count == 3, "\(list.stdoutText)")
            #expect(entries.allSatisfy { ($0["isLearner"] as? Bool) != true }, "every member a voter: \(list.stdoutText)")

            #expect(!acknowledged.isEmpty)
            for key in acknowledged {
                let value = try etcdctl(["host3"], ["get", key, "--print-value-only"]).stdoutText
                #expect(value == "v\(key.split(separator: "/").last!)\n", "\(key) lost")
            }
            // Re-run: nothing to do, nobody restarts.
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0 && again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(again.hosts)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
