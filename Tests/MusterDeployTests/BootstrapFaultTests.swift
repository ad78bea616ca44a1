import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterPlan
import MusterSandbox
import MusterTestSupport

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
            // The DNS server switched off at the start: named as the DNS server, nothing started.
            try DeploySandbox.powerOff("host3")
            _ = try await expectFailure(builder, naming: ["host3", "host3 is the DNS server of cluster 'main'", "nothing was changed"])
            try DeploySandbox.powerOn("host3")
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A discovery service that is down, then tokens the state holds that cannot bootstrap: one
    /// full of foreign members, one the service never issued (both replaced, said by name), one a
    /// cluster already formed under whose members lost their data (refused by name).
    @Test func discoveryTokensThatCannotBootstrapAndAServiceThatIsDown() async throws {
        try await onSandbox {
            let gateway = try DeploySandbox.acquire().gateway
            func inventory(service: String) throws -> PlanBuilder {
                try DeploySandbox.inventory(.static) {
                    $0.replacingOccurrences(of: "  main:", with: "  svc:")
                        .replacingOccurrences(of: "    bootstrap: static", with: """
                                client_port: 22379
                                peer_port: 22380
                                bootstrap: { discovery: { service: \(service), size: 3 } }
                            """)
                }
            }
            let nobody = "http://\(gateway):\(try FreePorts.pick(1, on: gateway)[0])"
            let down = try await expectFailure(try inventory(service: nobody), naming: ["discovery service \(nobody)"])
            #expect(down.contains("cluster 'svc'"), "\(down)")
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "ls /etc/etcd 2>/dev/null; true") == "", "nothing written on \(host)")
            }

            let service = try await DiscoveryServiceProcess.start(listen: gateway)
            defer { service.stop() }
            let builder = try inventory(service: service.url)
            let state = try builder.build().state
            func token(_ name: String) -> DiscoveryToken { DiscoveryToken(token: name, serviceURL: service.url + "/" + name) }

            // A token the service gave, already full of three members of someone else's cluster.
            let full = String(try await Probe.send("GET", service.url + "/new?size=3").text
                .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "/").last ?? "")
            for index in 1...3 {
                let put = try await Probe.send("PUT", "\(service.url)/\(full)/\(index)0000000000000?prevExist=false",
                                               form: "value=foreign\(index)%3Dhttp%3A%2F%2F192.0.2.\(index)%3A2380")
                #expect(put.status == 201, "\(put.status) \(put.text)")
            }
            try state.saveDiscoveryTokens(["svc": token(full)])
            let replaced = await DeploySandbox.upSaying(builder)
            #expect(replaced.error == nil, "\(replaced.error.map { "\($0)" } ?? "")")
            #expect(replaced.lines.contains("token \(full) already holds 3 member(s); making a fresh one"), "\(replaced.lines)")
            let formed = try #require(try state.discoveryTokens()["svc"])
            #expect(formed.token != full && formed.formed)

            // Every member's data lost, the state still saying the cluster formed under its token.
            try DeploySandbox.wipeHosts()
            _ = try await expectFailure(builder, naming: ["token \(formed.token)", formed.serviceURL ?? "?", "discovery-tokens.json", "down --wipe"])
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "pgrep -a etcd; ls /etc/etcd 2>/dev/null; true") == "", "nothing written or started on \(host)")
            }
            try await DeploySandbox.down(builder, wipe: true)
            #expect(try state.discoveryTokens()["svc"] == nil, "down --wipe forgets the spent token")

            // A token this service never issued (another service's, or one it dropped).
            let foreign = LocalState.newToken().replacingOccurrences(of: "-", with: "")
            try state.saveDiscoveryTokens(["svc": token(foreign)])
            let unknown = await DeploySandbox.upSaying(builder)
            #expect(unknown.error == nil, "\(unknown.error.map { "\($0)" } ?? "")")
            #expect(unknown.lines.contains("token \(foreign)"), "\(unknown.lines)")
            #expect(try state.discoveryTokens()["svc"]?.token != foreign)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
