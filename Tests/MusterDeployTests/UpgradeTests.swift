import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// A changed member binary is an upgrade: refused while a member is down and as a downgrade,
/// rolled one member at a time (leader last) with a client writing, done at the new cluster
/// version, every acknowledged write kept.
@Suite struct UpgradeTests {
    private func setBinary(_ binary: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"  binary: \S+"#, with: "  binary: \(binary)", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    private func etcdctl(_ arguments: [String], pki: String) throws -> ProcessResult {
        let endpoints = try ["host1", "host2", "host3"].map { "https://\(try DeploySandbox.host($0).address):2379" }
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s",
                                     "--command-timeout=5s", "--cacert=\(pki)/ca.crt", "--cert=\(pki)/client.crt",
                                     "--key=\(pki)/client.key"] + arguments, environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    private func exe(_ host: String) throws -> String {
        try DeploySandbox.exec(host, "readlink /proc/$(cat /run/etcd/main.pid)/exe 2>/dev/null || echo none")
    }

    @Test func etcd34To35RollsLeaderLastWithAWriterAndRefusesWhatIsUnsafe() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let pki = try builder.build().state.directory + "/pki/main"

            // Refused while a member is down; nothing changes.
            _ = try DeploySandbox.exec("host3", "kill -9 $(cat /run/etcd/main.pid)")
            try setBinary(DeploySandbox.etcd35, in: builder)
            let installed = try ["host1", "host2"].map { try DeploySandbox.exec($0, "ls -l --time-style=+%s /opt/muster/bin; cat /etc/etcd/main/conf.yml /etc/etcd/main/start-member.sh | sha256sum") }
            await #expect(throws: DeployError.self) { _ = try await DeploySandbox.up(builder) }
            #expect(try exe("host1").hasSuffix("etcd-3.4.23"))
            #expect(try ["host1", "host2"].map { try DeploySandbox.exec($0, "ls -l --time-style=+%s /opt/muster/bin; cat /etc/etcd/main/conf.yml /etc/etcd/main/start-member.sh | sha256sum") } == installed,
                    "a refused upgrade shipped or wrote something")
            try setBinary("/usr/bin/etcd", in: builder)
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")

            // The upgrade, with a writer throughout.
            let writer = Task.detached { () -> [String] in
                var acknowledged: [String] = []
                for index in 0..<600 {
                    if Task.isCancelled { break }
                    if (try? etcdctl(["put", "/upgrade/\(index)", "u\(index)"], pki: pki))?.succeeded == true {
                        acknowledged.append("/upgrade/\(index)")
                    }
                }
                return acknowledged
            }
            try setBinary(DeploySandbox.etcd35, in: builder)
            let upgraded = try await DeploySandbox.up(builder)
            writer.cancel()
            let acknowledged = await writer.value
            #expect(upgraded.reports.allSatisfy { $0.ok }, "\(upgraded.reports.map { $0.table() })")
            #expect(upgraded.backups.count == 1, "a snapshot before the upgrade")
            #expect(upgraded.hosts.flatMap(\.restarted).count == 3, "\(upgraded.hosts)")
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-3.5.16"), "\(host)") }
            let version = try LocalProcess.run(["curl", "-s", "--cacert", "\(pki)/ca.crt", "--cert", "\(pki)/client.crt",
                                                "--key", "\(pki)/client.key", "https://\(try DeploySandbox.host("host1").address):2379/version"])
            #expect(version.stdoutText.contains("\"etcdcluster\":\"3.5.0\""), "\(version.stdoutText)")
            #expect(!acknowledged.isEmpty)
            for key in acknowledged {
                #expect(try etcdctl(["get", key, "--print-value-only"], pki: pki).stdoutText == "u\(key.split(separator: "/").last!)\n", "\(key) lost")
            }

            // A downgrade is refused, nothing changed.
            try setBinary("/usr/bin/etcd", in: builder)
            await #expect(throws: DeployError.self) { _ = try await DeploySandbox.up(builder) }
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-3.5.16"), "\(host)") }
            try setBinary(DeploySandbox.etcd35, in: builder)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
