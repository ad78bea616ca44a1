import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterPlan
import MusterWorkspace
import MusterSandbox

/// TLS clusters on the deploy sandbox: certificates from muster's CA, https everywhere.
@Suite struct TLSTests {
    private func tlsInventory(_ bootstrap: SandboxBootstrap, binary: String = "/usr/bin/etcd",
                              edit: @escaping (String) -> String = { $0 }) throws -> PlanBuilder {
        try DeploySandbox.inventory(bootstrap, binary: binary) {
            edit($0.replacingOccurrences(of: "  main:\n    members: [host1, host2, host3]\n    tls: false", with: "  main:\n    members: [host1, host2, host3]\n    tls: true")
                .replacingOccurrences(of: "    members: [host2, host3]\n    tls: false", with: "    members: [host2, host3]\n    tls: true"))
        }
    }

    private func etcdctl(_ arguments: [String], client: (cert: String, key: String, ca: String)?) throws -> ProcessResult {
        var tlsArguments: [String] = []
        if let client { tlsArguments = ["--cacert=\(client.ca)", "--cert=\(client.cert)", "--key=\(client.key)"] }
        return try LocalProcess.run(["etcdctl", "--dial-timeout=3s", "--command-timeout=5s"] + tlsArguments + arguments,
                                    environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    @Test func staticTLSClusterOnEtcd34ComesUpAndRefusesClientsWithoutCertificates() async throws {
        try await onSandbox {
            let builder = try tlsInventory(.static)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            let state = try builder.build().state.directory
            let pki = "\(state)/pki/main"
            let client = (cert: "\(pki)/client.crt", key: "\(pki)/client.key", ca: "\(pki)/ca.crt")
            let endpoint = "https://\(try DeploySandbox.host("host1").address):2379"
            let withCert = try etcdctl(["--endpoints=\(endpoint)", "endpoint", "health", "--cluster"], client: client)
            #expect(withCert.succeeded, "\(withCert.stderrText)")
            let withoutCert = try etcdctl(["--endpoints=\(endpoint)", "--cacert=\(client.ca)", "put", "/x", "y"], client: nil)
            #expect(!withoutCert.succeeded, "a client without a certificate must be refused")
            // Keys on the host belong to the etcd user, 0600; the peer port speaks TLS only.
            #expect(try DeploySandbox.exec("host2", "stat -c '%a %U' /etc/etcd/main/pki/server.key /etc/etcd/main/pki/peer.key") == "600 etcd\n600 etcd")
            // A re-run reuses the certificates: nothing moves, no member restarts.
            let pids = try DeploySandbox.exec("host3", "cat /run/etcd/main.pid")
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0)
            #expect(try DeploySandbox.exec("host3", "cat /run/etcd/main.pid") == pids)

            // New certificates for one member (as when they near expiry or its names change)
            // reach it by a restart of that member alone; the cluster stays whole and keeps data.
            #expect(try etcdctl(["--endpoints=\(endpoint)", "put", "/before-renewal", "kept"], client: client).succeeded)
            let running = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            for file in ["host2-server.crt", "host2-server.key", "host2-peer.crt", "host2-peer.key"] {
                try FileManager.default.removeItem(atPath: "\(pki)/\(file)")
            }
            let renewal = try await DeploySandbox.up(builder)
            #expect(renewal.changed)
            #expect(renewal.reports.allSatisfy { $0.ok }, "\(renewal.reports.map { $0.table() })")
            let after = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            #expect(after[0] == running[0] && after[2] == running[2], "only host2 restarts")
            #expect(after[1] != running[1], "host2 restarts with its new certificates")
            let pushed = try DeploySandbox.exec("host2", "cat /etc/etcd/main/pki/server.crt")
            #expect(pushed == (try String(contentsOfFile: "\(pki)/host2-server.crt", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines))
            let kept = try etcdctl(["--endpoints=\(endpoint)", "get", "/before-renewal", "--print-value-only"], client: client)
            #expect(kept.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "kept")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Every bootstrap mode with TLS on both member versions (the static 3.4 case is above).
    @Test(arguments: [
        (SandboxBootstrap.static, "3.5"), (.discovery, "3.4"), (.discovery, "3.5"), (.dns, "3.4"), (.dns, "3.5"),
    ])
    func everyBootstrapModeWithTLS(_ mode: SandboxBootstrap, _ version: String) async throws {
        let binary = version == "3.4" ? "/usr/bin/etcd" : DeploySandbox.etcd35
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            Issue.record("etcd \(version) missing at \(binary): run scripts/setup.sh (it fetches it)")
            return
        }
        try await onSandbox {
            let builder = try tlsInventory(mode, binary: binary) {
                $0.replacingOccurrences(of: "  domain: ", with: "  configure_resolvers: true\n  domain: ")
                  .replacingOccurrences(of: "    # plain-http DNS", with: "    # DNS")
                  .replacingOccurrences(of: "    tls: false\n    bootstrap: { dns: {} }", with: "    tls: true\n    bootstrap: { dns: {} }")
            }
            let built = try builder.build()
            #expect(built.plan.clusters.last?.tls == true)
            if mode == .dns {
                #expect(built.plan.clusters[0].dns?.serverRecords.first?.service == "_etcd-server-ssl._tcp")
            }
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec("host2", "readlink /proc/$(cat /run/etcd/main.pid)/exe").hasSuffix("etcd-\(version == "3.4" ? "3.4.23" : "3.5.16")"))
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A failed run writes no state a later `up` would treat as applied: a `--dry-run` with one
    /// host's address wrong leaves that member's certificate in the state dir as it was, and the
    /// next correct `up` restarts nothing and moves nothing.
    @Test func aFailedDryRunLeavesTheCertificatesAsTheyWere() async throws {
        try await onSandbox {
            let builder = try tlsInventory(.static)
            let first = try await DeploySandbox.up(builder)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")
            let pki = try builder.build().state.directory + "/pki/main"
            let certificate = try Data(contentsOf: URL(fileURLWithPath: "\(pki)/host2-server.crt"))
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }

            // An address on the sandbox's bridge where no host answers.
            let address = try DeploySandbox.host("host2").address
            let nobody = address.split(separator: ".").dropLast().joined(separator: ".") + ".250"
            var wrong = builder
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            let wrongPath = (builder.inventoryPath as NSString).deletingLastPathComponent + "/wrong.yml"
            try text.replacingOccurrences(of: "{ address: \(address)", with: "{ ssh: { connect_timeout: 2 }, address: \(nobody)")
                .write(toFile: wrongPath, atomically: true, encoding: .utf8)
            wrong.inventoryPath = wrongPath
            wrong.stateDirectory = try builder.build().state.directory
            var dryRun = DeploySandbox.bringUp(builder: wrong, options: DeploySandbox.options, progress: Progress(quiet: true))
            dryRun.dryRun = true
            await #expect(throws: DeployError.self) { try await dryRun.run() }
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(pki)/host2-server.crt")) == certificate,
                    "the failed dry run rewrote host2's certificate in the state")

            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0)
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } == pids,
                    "a member restarted after the failed dry run")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
