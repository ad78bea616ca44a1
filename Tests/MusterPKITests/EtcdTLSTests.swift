import Foundation
import MusterBasics
import Testing
@testable import MusterPKI
import MusterTestSupport

/// A real etcd 3.4 member on 127.0.0.1 speaking TLS on both ports with MusterPKI's certificates.
@Suite struct EtcdAcceptsTheCertificates {
    static let etcd = "/usr/bin/etcd", etcdctl = "/usr/bin/etcdctl"

    @Test func etcdctlWithClientCertificateWorksAndWithoutIsRefused() async throws {
        for path in [Self.etcd, Self.etcdctl] where !FileManager.default.isExecutableFile(atPath: path) {
            Issue.record("\(path) is missing: this test needs a real etcd 3.4 (fails rather than skips)")
            return
        }
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "tls")
        let member = try pki.memberCertificates(member: "m1", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let client = try pki.clientCertificate()
        let ports = try FreePorts.pick(2)
        let peerURL = "https://127.0.0.1:\(ports[0])", clientURL = "https://127.0.0.1:\(ports[1])"
        let etcdMember = try LoopbackEtcd(
            binary: Self.etcd, name: "m1", root: state.path, ports: (client: ports[1], peer: ports[0]),
            tls: EtcdMemberTLS(caPath: member.caPath, certPath: member.server.certPath, keyPath: member.server.keyPath,
                               peerCertPath: member.peer.certPath, peerKeyPath: member.peer.keyPath,
                               peerCAPath: pki.peerAuthority.certificatePath),
            enableV2: false, extra: ["--initial-cluster", "m1=\(peerURL)", "--initial-cluster-state", "new"])
        defer { etcdMember.stop() }

        let base = [Self.etcdctl, "--endpoints=\(clientURL)", "--dial-timeout=2s", "--command-timeout=3s"]
        let withCert = base + ["--cacert", client.caPath, "--cert", client.certPath, "--key", client.keyPath,
                               "endpoint", "health"]
        var healthy: ProcessResult?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let result = try LocalProcess.run(withCert, environment: ["ETCDCTL_API": "3"], timeout: 15)
            if result.succeeded { healthy = result; break }
            try await Task.sleep(for: .milliseconds(300))
        }
        guard let healthy else {
            Issue.record("etcd never became healthy over TLS; log tail:\n\(etcdMember.log.suffix(3000))")
            return
        }
        // etcdctl 3.4 prints endpoint health on stderr.
        #expect((healthy.stdoutText + healthy.stderrText).contains("is healthy"), "\(healthy.stdoutText)\(healthy.stderrText)")

        // A write over gRPC, to be sure more than /health works.
        let put = try LocalProcess.run(base + ["--cacert", client.caPath, "--cert", client.certPath,
                                               "--key", client.keyPath, "put", "k", "v"],
                                       environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(put.succeeded && put.stdoutText.contains("OK"), "\(put.stderrText)")

        // Trusting the CA but presenting no certificate: refused.
        let anonymous = try LocalProcess.run(base + ["--cacert", client.caPath, "endpoint", "health"],
                                             environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!anonymous.succeeded, "\(anonymous.stdoutText)")
        // Plain http on the TLS port: refused too.
        let plain = try LocalProcess.run([Self.etcdctl, "--endpoints=http://127.0.0.1:\(ports[1])",
                                          "--dial-timeout=2s", "--command-timeout=3s", "endpoint", "health"],
                                         environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!plain.succeeded)
        // A client certificate from another CA: refused.
        let strangerState = try TemporaryDirectory(prefix: "muster-pki")
        let stranger = try ClusterPKI(stateDirectory: strangerState.path, cluster: "tls").clientCertificate()
        let foreign = try LocalProcess.run(base + ["--cacert", client.caPath, "--cert", stranger.certPath,
                                                   "--key", stranger.keyPath, "endpoint", "health"],
                                           environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!foreign.succeeded)
        // The server certificate's clientAuth usage: etcd's own gateway dials with it (etcd issue 9785).
        let asServer = try LocalProcess.run(base + ["--cacert", member.caPath, "--cert", member.server.certPath,
                                                    "--key", member.server.keyPath, "endpoint", "health"],
                                            environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(asServer.succeeded, "\(asServer.stderrText)")
    }
}
