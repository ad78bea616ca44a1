import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// A host that goes away in the middle of a run: switched off (its sshd, pid 1 of the host, killed
/// with everything it runs) while muster stands still right after preflight.
@Suite struct HostLossFaultTests {
    @Test func aHostLostAfterPreflightStopsTheRunNamingItAndTheNextUpConverges() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let cut: ProcessResult
            do {
                cut = try await MusterCLI.up(builder, pausedAt: "up.after-preflight") { try DeploySandbox.powerOff("host2") }
            } catch {
                try? DeploySandbox.powerOn("host2")
                throw error
            }
            try DeploySandbox.powerOn("host2")
            #expect(cut.status == 1, "\(cut.stderrText)")
            #expect(cut.stderrText.contains("\nhost2: run: connection lost (the host went down, or its sshd stopped)"),
                    "the error names the lost host: \(cut.stderrText)")

            // The hosts that stayed hold whole files only: no partial upload, the binary exact.
            let expected = try Digest.sha256Hex(fileAt: "/usr/bin/etcd")
            for host in ["host1", "host3"] {
                #expect(try DeploySandbox.exec(host, "find /opt/muster /etc/etcd -name '*.tmp*' 2>/dev/null") == "", "\(host)")
                let binary = try DeploySandbox.exec(host, "sha256sum /opt/muster/bin/etcd-3.4.23 2>/dev/null | cut -c1-64")
                #expect(binary == "" || binary == expected, "\(host): \(binary)")
            }

            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
