import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// Faults of the bootstrap services a cluster forms through: the DNS server, a discovery
/// service. Each a named error, exit 1, and a next `up` that finishes once the fault is gone.
@Suite struct BootstrapFaultTests {
    private func expectFailure(_ builder: PlanBuilder, naming needles: [String]) async throws -> String {
        do {
            _ = try await DeploySandbox.up(builder)
            Issue.record("up should have failed")
            return ""
        } catch {
            for needle in needles { #expect("\(error)".contains(needle), "\(error)") }
            #expect(!"\(error)".contains("timed out"), "a named error, not a timeout: \(error)")
            #expect(((error as? any ClassifiedError)?.kind ?? .host).exitCode == 1, "\(error)")
            return "\(error)"
        }
    }

    /// The DNS server's port 53 held by another program (a resolver an operator left running):
    /// dnsmasq cannot serve, the run says so naming DNS and the host, no member started.
    @Test func aDNSServerThatCannotServeIsNamedAndTheNextUpConverges() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.dns) {
                $0.replacingOccurrences(of: "  domain: ", with: "  configure_resolvers: true\n  domain: ")
            }
            let server = try DeploySandbox.host("host3").address
            let blocker = try DeploySandbox.exec("host3", """
                setsid python3 -c 'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(server)", 53)); time.sleep(120)' </dev/null >/dev/null 2>&1 & echo $!
                """)
            defer { _ = try? DeploySandbox.exec("host3", "kill \(blocker) 2>/dev/null") }
            var bound = false
            for _ in 0..<50 where !bound {
                bound = try DeploySandbox.exec("host3", "ss -Hlnu").contains("\(server):53")
                if !bound { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(bound, "the blocker holds \(server):53")
            _ = try await expectFailure(builder, naming: ["host3", "DNS server host3", "did not start"])
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "pgrep -a etcd; true") == "", "no member started on \(host)")
            }
            _ = try DeploySandbox.exec("host3", "kill \(blocker)")
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
