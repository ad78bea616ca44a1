import Foundation
import MusterBasics
import Testing
@testable import MusterPKI
import MusterTestSupport

/// What a member's certificates may do (issue 28): a server certificate is a client credential
/// only where etcd 3.4's gateway needs it to be, a gateway certificate is trusted by nothing but
/// its own member, and no member certificate has a common name etcd could take for a user.
@Suite struct MemberCertificateUsageTests {
    private func subject(_ path: String) throws -> String {
        try openssl(["x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253"])
    }

    @Test func withItsOwnGatewayAServerCertificateIsNoClientCertificate() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let member = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: true)
        #expect(try openssl(["verify", "-CAfile", pki.caPath, "-purpose", "sslserver", member.server.certPath]).contains(": OK"))
        #expect(throws: PKIError.self) { try openssl(["verify", "-CAfile", pki.caPath, "-purpose", "sslclient", member.server.certPath]) }
        // The gateway certificate: a client certificate its member's client port alone trusts
        // (self-signed: the cluster CA does not vouch for it).
        let gateway = try #require(member.gateway)
        #expect(gateway.certPath.hasSuffix("/m1-gateway.crt") && gateway.keyPath.hasSuffix("/m1-gateway.key"))
        #expect(try mode(gateway.keyPath) == 0o600)
        #expect(throws: PKIError.self) { try openssl(["verify", "-CAfile", pki.caPath, "-purpose", "sslclient", gateway.certPath]) }
        let trust = state.path + "/trust.crt"
        try member.clientPortTrustPEM.write(toFile: trust, atomically: true, encoding: .utf8)
        #expect(try openssl(["verify", "-CAfile", trust, "-purpose", "sslclient", gateway.certPath]).contains(": OK"))
        #expect(throws: PKIError.self) { try openssl(["verify", "-CAfile", trust, "-purpose", "sslserver", gateway.certPath]) }
        // Another member's trust does not take m1's gateway certificate.
        let other = try pki.memberCertificates(member: "m2", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: true)
        try other.clientPortTrustPEM.write(toFile: trust, atomically: true, encoding: .utf8)
        #expect(throws: PKIError.self) { try openssl(["verify", "-CAfile", trust, "-purpose", "sslclient", gateway.certPath]) }
        // Reopened, everything is reused.
        let again = try ClusterPKI(stateDirectory: state.path, cluster: "main")
            .memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: true)
        #expect(!again.renewed)
        // Forgotten with the member.
        try ClusterPKI.forget(member: "m1", cluster: "main", stateDirectory: state.path)
        #expect(!FileManager.default.fileExists(atPath: gateway.keyPath))
    }

    /// etcd 3.4's gateway presents the server certificate to its own port: it stays a client one.
    @Test func withoutItTheServerCertificateStaysAClientCertificateAndHasNoGateway() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let member = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: false)
        #expect(member.gateway == nil)
        #expect(try openssl(["verify", "-CAfile", pki.caPath, "-purpose", "sslclient", member.server.certPath]).contains(": OK"))
        #expect(member.clientPortTrustPEM == pki.authority.certificatePEM)
    }

    /// etcd's UserAdd refuses only the empty name: a member named `root` must not be etcd's root.
    @Test func memberCertificatesHaveNoCommonNameEvenForAMemberNamedRoot() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let member = try pki.memberCertificates(member: "root", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: true)
        for path in [member.server.certPath, member.peer.certPath, try #require(member.gateway).certPath] {
            let text = try subject(path)
            #expect(!text.contains("CN="), "\(path): \(text)")
            #expect(text.contains("OU=etcd member root"), "\(path): \(text)")
        }
        // muster's own client certificate keeps its name: it is meant to be a user.
        #expect(try subject(try pki.clientCertificate().certPath).contains("CN=muster"))
    }

    /// A cluster's certificates from before (CN the member's name, server certificate also a
    /// client one) are renewed by the next run, which `up` rolls out one member at a time.
    @Test func certificatesOfTheFormerFormAreRenewed() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let former = try pki.authority.issue(kind: .serverDialingItself, commonName: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let directory = pki.directory
        try PKIFiles.write(former.privateKeyPEM, to: directory + "/m1-server.key", mode: 0o600)
        try PKIFiles.write(former.certificatePEM, to: directory + "/m1-server.crt", mode: 0o644)
        let onEtcd34 = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: false)
        #expect(onEtcd34.serverOutcome == .renewed(reason: "a common name etcd would take for a user name"))
        // The same certificate with no CN is still renewed on etcd 3.5: it is a client one too.
        let onEtcd35 = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs, gateway: true)
        #expect(onEtcd35.serverOutcome == .renewed(reason: "key usages differ"))
        #expect(onEtcd35.gatewayOutcome == .issued)
    }
}
