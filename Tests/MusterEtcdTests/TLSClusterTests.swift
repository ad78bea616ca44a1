import Foundation
import MusterBasics
import MusterTestSupport
// MusterEtcdTests needs "MusterPKI" among its dependencies in Package.swift for this import.
import MusterPKI
import Testing
@testable import MusterEtcd

/// A real 3-member etcd 3.4 on 127.0.0.1 with https on both ports and client-cert-auth, using
/// MusterPKI's certificates: the Verifier and the v2 discovery helpers speak TLS with muster's
/// client certificate, and anything without it is refused.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct TLSClusterTests {
    @Test func verifierAndDiscoveryOverTLS() async throws {
        let state = try TemporaryDirectory.create(prefix: "muster-etcd-tls")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let pki = try ClusterPKI(stateDirectory: state, cluster: "tls")
        var members: [String: LocalTLS.Member] = [:]
        for name in ["m1", "m2", "m3"] {
            let issued = try pki.memberCertificates(member: name, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
            members[name] = .init(certPath: issued.server.certPath, keyPath: issued.server.keyPath,
                                  peerCertPath: issued.peer.certPath, peerKeyPath: issued.peer.keyPath)
        }
        let client = try pki.clientCertificate()
        let tls = EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)

        let cluster = try LocalEtcdCluster(tls: LocalTLS(caPath: pki.caPath, peerCAPath: pki.peerAuthority.certificatePath,
                                                         members: members, client: tls))
        defer { cluster.stopAll() }
        try cluster.start()
        try await cluster.waitHealthy()
        let expectation = cluster.expectation()
        #expect(expectation.members.allSatisfy { $0.endpoint.hasPrefix("https://127.0.0.1:") })

        // The Verifier, with muster's client certificate: every check passes.
        let report = await Verifier(expectation: expectation, tls: tls).run()
        #expect(report.ok, "\(report.table())")
        #expect(report.exitCode == 0)
        #expect(report.checks.count == 11 && report.checks.allSatisfy(\.ok))

        // etcdctl agrees, with the same files.
        let health = try cluster.etcdctl(["endpoint", "health"])
        #expect(health.stderrText.contains("is healthy") || health.stdoutText.contains("is healthy"))

        // v2 discovery registration against an https backend, with the client certificate.
        let base = cluster.node("m2").clientURL + "/v2/keys/discovery/" + UUID().uuidString.lowercased()
        #expect(try await V2Keys.discoverySize(baseURL: base, tls: tls) == nil)
        try await V2Keys.setDiscoverySize(baseURL: base, size: 3, tls: tls)
        #expect(try await V2Keys.discoverySize(baseURL: base, tls: tls) == 3)
        #expect(try await V2Keys.registeredMembers(discoveryURL: base, tls: tls) == [])

        // Without TLS settings (system roots, no client certificate): the server is not trusted.
        let m1 = cluster.node("m1").clientURL
        do {
            _ = try await EtcdClient(baseURL: m1, timeout: 5).status()
            Issue.record("an https member with a private CA answered a client trusting the system roots")
        } catch {
            #expect(error.kind == .tls, "\(error)")
        }
        // Trusting the CA but presenting a client certificate from another CA: refused by etcd.
        let strangerState = state + "/stranger"
        let stranger = try ClusterPKI(stateDirectory: strangerState, cluster: "tls").clientCertificate()
        let foreign = EtcdTLS(caPath: client.caPath, certPath: stranger.certPath, keyPath: stranger.keyPath)
        do {
            _ = try await EtcdClient(baseURL: m1, timeout: 5, tls: foreign).status()
            Issue.record("a client certificate of another CA was accepted")
        } catch {
            // Said in the operator's words, without the TLS library's codes and build paths.
            #expect(error.kind == .tls, "\(error)")
            #expect(error.message.contains("the member refused muster's client certificate")
                    || error.message.contains("does not trust muster's client certificate"), "\(error)")
            #expect(!error.message.contains("OPENSSL_internal") && !error.message.contains(".cc:"), "\(error)")
        }
        // Trusting another CA than the members': their certificates are not signed by it.
        let wrongCA = EtcdTLS(caPath: stranger.caPath, certPath: client.certPath, keyPath: client.keyPath)
        do {
            _ = try await EtcdClient(baseURL: m1, timeout: 5, tls: wrongCA).status()
            Issue.record("a member certificate of another CA was trusted")
        } catch {
            #expect(error.kind == .tls, "\(error)")
            #expect(error.message.contains("not signed by the CA muster holds for this cluster"), "\(error)")
            #expect(error.message.contains("CERTIFICATE_VERIFY_FAILED") && !error.message.contains(".cc:"), "\(error)")
        }
        let refused = await Verifier(expectation: expectation, tls: foreign, timeout: 5).run()
        #expect(refused.exitCode == 1)
        #expect(refused.check(named: "endpoints-healthy")?.ok == false)
        // Plain http to the https port: no answer that passes for etcd's.
        await #expect(throws: EtcdClientError.self) {
            _ = try await EtcdClient(baseURL: m1.replacingOccurrences(of: "https:", with: "http:"), timeout: 5).status()
        }
        // Missing files are reported per request, not at construction.
        let missing = EtcdTLS(caPath: state + "/nope.crt", certPath: client.certPath, keyPath: client.keyPath)
        do {
            _ = try await EtcdClient(baseURL: m1, tls: missing).health()
            Issue.record("a missing CA file went unnoticed")
        } catch {
            #expect(error.kind == .tls && error.message.contains("nope.crt"), "\(error)")
        }
    }
}

/// The server's certificate must name the address asked: NIOSSL checks IP SANs too, so one
/// member's certificate cannot stand in for another's. `openssl s_server` plays the member.
@Suite(.timeLimit(.minutes(2)))
struct TLSServerIdentityTests {
    @Test func certificateForAnotherAddressIsRejected() async throws {
        let state = try TemporaryDirectory.create(prefix: "muster-etcd-tls")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let pki = try ClusterPKI(stateDirectory: state, cluster: "tls")
        let client = try pki.clientCertificate()
        let tls = EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)

        for (name, ips, acceptable) in [("right", ["127.0.0.1"], true), ("wrong", ["10.9.9.9"], false)] {
            let member = try pki.memberCertificates(member: name, dnsNames: ["\(name).example"], ipAddresses: ips)
            let port = try FreePorts.pick(1)[0]
            let server = try ChildProcesses.start("/usr/bin/openssl", [
                "s_server", "-accept", "127.0.0.1:\(port)", "-cert", member.server.certPath,
                "-key", member.server.keyPath, "-CAfile", pki.caPath, "-Verify", "1", "-www", "-quiet",
            ], logPath: nil)
            defer { ChildProcesses.forceStop(server) }
            var outcome: Result<HTTPAnswer, EtcdClientError>?
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline {
                do {
                    outcome = .success(try await HTTP(timeout: 5, tls: tls).send("GET", "https://127.0.0.1:\(port)/"))
                    break
                } catch where error.kind == .transport && error.message == "connection refused" {
                    try await Task.sleep(for: .milliseconds(100))   // s_server not listening yet
                } catch {
                    outcome = .failure(error)
                    break
                }
            }
            switch outcome {
            case .success(let answer):
                #expect(acceptable, "\(name): accepted a certificate for \(ips): HTTP \(answer.status)")
            case .failure(let error):
                #expect(!acceptable, "\(name): \(error)")
                #expect(error.kind == .tls, "\(error)")
                #expect(error.message.contains("does not name 127.0.0.1"), "\(error)")
            case nil:
                Issue.record("\(name): openssl s_server never listened")
            }
        }
    }
}
