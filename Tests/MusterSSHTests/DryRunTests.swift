import Foundation
import Testing

/// `muster up --dry-run` (the CLI binary this checkout built) against the loopback sshd: it
/// connects and runs preflight, and records nothing, not even with --accept-new-host-keys.
/// Here rather than in MusterCLITests because the real sshd fixture lives in this target.
@Suite("dry run records nothing")
struct DryRunTests {
    static let muster = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path + "/.build/debug/muster"

    @Test func noHostKeyAndNoStateAfterADryRun() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.muster), "build first: \(Self.muster)")
        let sshd = try await SSHDFixture.start()
        let knownHosts = "\(sshd.directory)/dry_known_hosts"
        FileManager.default.createFile(atPath: knownHosts, contents: nil)
        let state = "\(sshd.directory)/state"
        let inventory = "\(sshd.directory)/inventory.yml"
        try """
            ssh:
              user: root
              port: \(sshd.port)
              identity: \(sshd.clientKey)
              known_hosts: \(knownHosts)
            member:
              binary: /usr/bin/etcd
            hosts:
              a: { address: 127.0.0.1 }
            clusters:
              main:
                members: [a]
                bootstrap: static

            """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let run = try await offPool {
            try Child.run([Self.muster, "up", inventory, "--state", state, "--dry-run", "--accept-new-host-keys",
                           "--templates", URL(fileURLWithPath: Self.muster).deletingLastPathComponent()
                               .deletingLastPathComponent().deletingLastPathComponent().path + "/templates"],
                          environment: ["SSH_AUTH_SOCK": ""], timeout: 60, allowFailure: true)
        }
        // It did reach the host: the unknown key was accepted for this run and used.
        #expect(sshd.log.contains("Accepted publickey"), "\(run.output)")
        #expect(run.output.contains("dry run"), "\(run.output)")
        #expect(try String(contentsOfFile: knownHosts, encoding: .utf8).isEmpty, "a dry run wrote known_hosts")
        #expect(!FileManager.default.fileExists(atPath: state), "a dry run made the state dir \(state)")
    }
}
