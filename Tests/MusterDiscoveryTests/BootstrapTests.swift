import Foundation
import MusterTestSupport
import Testing
@testable import MusterDiscovery

/// Real etcd members on loopback bootstrap through the service, as etcd's own discovery client
/// speaks to it: on etcd 3.4 and 3.5.
@Suite(.serialized) struct BootstrapThroughServiceTests {
    @Test(arguments: [EtcdBinaries.etcd34, EtcdBinaries.etcd35])
    func threeMembersBootstrapAndTheTokenIsSpent(binary: String) async throws {
        try EtcdBinaries.require(binary)
        let root = try TemporaryDirectory.create(prefix: "muster-disco")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let backing = try await LoopbackEtcd.startVerified(root: root)
        // A short long-poll bound: the members wait through several empty answers.
        let service = try await ServiceUnderTest(etcdURL: backing.clientURL) { $0.waitTimeout = 1 }
        var members: [LoopbackEtcd] = []
        func stopAll() async {
            for member in members { member.stop() }
            await service.stop()
            backing.stop()
        }
        do {
            let answer = try await HTTPProbe.send("GET", service.url + "/new?size=3")
            let discovery = answer.text
            #expect(answer.status == 200)
            let ports = try FreePorts.pick(6)
            func member(_ index: Int, extra: [String] = []) throws -> LoopbackEtcd {
                try LoopbackEtcd(binary: binary, name: "m\(index)", root: root,
                                ports: (ports[2 * index], ports[2 * index + 1]),
                                extra: ["--discovery", discovery, "--discovery-fallback", "exit"] + extra)
            }
            members = [try member(0), try member(1)]
            // The third comes after more than one long-poll bound has passed: three empty answers
            // (two members, so at least one of them waited through a second bound). Bounded: 20 s.
            let deadline = ContinuousClock.now + .seconds(20)
            while service.logText.components(separatedBy: "long poll: nothing within").count - 1 < 3 {
                guard ContinuousClock.now < deadline else { throw HarnessError(description: "no three empty long-poll answers within 20 s:\n\(service.logText)") }
                try await Task.sleep(for: .milliseconds(20))
            }
            members.append(try member(2))
            for member in members { try await member.waitHealthy(timeout: 60) }

            let listing = try await HTTPProbe.send("GET", discovery)
            #expect(listing.childNames.count == 3, "\(listing.text)")
            #expect(!listing.text.contains("_config"))
            let list = try await HTTPProbe.send("GET", members[0].clientURL + "/v2/members")
            #expect(list.text.components(separatedBy: "\"name\"").count - 1 == 3, "\(list.text)")

            // A fourth member on the full token is refused by etcd's client (and exits).
            let fourthPorts = try FreePorts.pick(2)
            let fourth = try LoopbackEtcd(binary: binary, name: "m4", root: root, ports: (fourthPorts[0], fourthPorts[1]),
                                         extra: ["--discovery", discovery, "--discovery-fallback", "exit"])
            #expect(fourth.waitExit(seconds: 30), "a fourth member kept running")
            #expect(fourth.log.contains("discovery cluster is full") || fourth.log.contains("discovery: cluster is full"),
                    "\(fourth.log.suffix(1500))")
            fourth.stop()

            // The token reused by a member whose data is gone: etcd's "found duplicate id".
            members[0].stop()
            try FileManager.default.removeItem(atPath: members[0].dataDir)
            let reused = try member(0)
            #expect(reused.waitExit(seconds: 30), "a member on a reused token kept running")
            // 3.4: "member "m0" has previously registered with discovery service token"; the
            // same check in 3.5 (etcd-facts: "found duplicate id" then "has been registered").
            #expect(reused.log.contains("found duplicate id") || reused.log.contains("registered with discovery service"),
                    "\(reused.log.suffix(1500))")
            reused.stop()
            #expect(service.logText.contains("-> 412"), "the duplicate registration got etcd's 412")
        } catch {
            await stopAll()
            throw error
        }
        await stopAll()
    }
}
