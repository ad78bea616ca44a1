import Foundation
import MusterBasics
import Testing
@testable import MusterPKI
import MusterTestSupport

func mode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

func openssl(_ arguments: [String]) throws -> String {
    let result = try LocalProcess.run(["/usr/bin/openssl"] + arguments, timeout: 30)
    guard result.succeeded else {
        throw PKIError(path: "", message: "openssl \(arguments.joined(separator: " ")): \(result.stderrText)")
    }
    return result.stdoutText
}

let memberDNS = ["m1.example.test", "example.test", "localhost"]
let memberIPs = ["10.0.0.1", "127.0.0.1"]

@Suite struct ClusterPKITests {
    @Test func aPKIMadeBeforeThePeerCAKeepsSigningPeersWithItsOneCA() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let dir = ClusterPKI.directory(stateDirectory: state.path, cluster: "main")
        let authority = try CertificateAuthority(directory: dir, commonName: "muster CA for main")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        #expect(!pki.hasSeparatePeerCA)
        let member = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        #expect(member.peerCAPEM == authority.certificatePEM)
        #expect(try openssl(["verify", "-CAfile", authority.certificatePath, "-purpose", "sslclient", member.peer.certPath]).contains(": OK"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/peer-ca.key"))
        // Reopened, it stays so (and reuses what it issued).
        let again = try ClusterPKI(stateDirectory: state.path, cluster: "main").memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        #expect(!again.renewed)
    }

    @Test func layoutModesAndChains() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        #expect(pki.authority.created)
        let member = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let client = try pki.clientCertificate()
        let dir = state.path + "/pki/main"
        #expect(member.server.certPath == dir + "/m1-server.crt")
        #expect(member.server.keyPath == dir + "/m1-server.key")
        #expect(member.peer.certPath == dir + "/m1-peer.crt")
        #expect(member.caPath == dir + "/ca.crt")
        #expect(client.certPath == dir + "/client.crt" && client.keyPath == dir + "/client.key" && client.caPath == dir + "/ca.crt")
        #expect(member.serverOutcome == .issued && member.peerOutcome == .issued && member.renewed)

        #expect(try mode(state.path + "/pki") == 0o700)
        #expect(try mode(dir) == 0o700)
        #expect(pki.hasSeparatePeerCA && pki.peerAuthority.certificatePath == dir + "/peer-ca.crt")
        for key in ["ca.key", "peer-ca.key", "m1-server.key", "m1-peer.key", "client.key"] {
            #expect(try mode(dir + "/" + key) == 0o600, "\(key)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp.") }
        #expect(leftovers.isEmpty)

        // openssl accepts each chain, for the purpose each certificate serves, under its own CA.
        let peerCA = pki.peerAuthority.certificatePath
        for (path, ca, purpose) in [(member.server.certPath, member.caPath, "sslserver"), (member.server.certPath, member.caPath, "sslclient"),
                                    (member.peer.certPath, peerCA, "sslserver"), (member.peer.certPath, peerCA, "sslclient"),
                                    (client.certPath, member.caPath, "sslclient")] {
            let output = try openssl(["verify", "-CAfile", ca, "-purpose", purpose, path])
            #expect(output.contains(": OK"), "\(path) \(purpose): \(output)")
        }
        #expect(throws: (any Error).self) {
            try openssl(["verify", "-CAfile", member.caPath, "-purpose", "sslserver", client.certPath])
        }
        // Neither CA vouches for the other's certificates: peers and clients are apart.
        for (path, ca) in [(member.peer.certPath, member.caPath), (client.certPath, peerCA), (member.server.certPath, peerCA)] {
            #expect(throws: (any Error).self, "\(path) under \(ca)") {
                try openssl(["verify", "-CAfile", ca, "-purpose", "sslclient", path])
            }
        }
        #expect(member.peerCAPEM == (try String(contentsOfFile: peerCA, encoding: .utf8)))

        let server = try openssl(["x509", "-noout", "-text", "-in", member.server.certPath])
        #expect(server.contains("DNS:example.test, DNS:localhost, DNS:m1.example.test, IP Address:10.0.0.1, IP Address:127.0.0.1"), "\(server)")
        #expect(server.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        #expect(server.contains("Subject: O = muster, OU = etcd member m1 server"), "\(server)")
        #expect(server.contains("ecdsa-with-SHA256") && server.contains("prime256v1"))
        let peer = try openssl(["x509", "-noout", "-text", "-in", member.peer.certPath])
        #expect(peer.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        #expect(peer.contains("IP Address:10.0.0.1"))
        let clientText = try openssl(["x509", "-noout", "-text", "-in", client.certPath])
        #expect(clientText.contains("CN = muster"))
        #expect(clientText.contains("TLS Web Client Authentication") && !clientText.contains("TLS Web Server"))
        let ca = try openssl(["x509", "-noout", "-text", "-in", member.caPath])
        #expect(ca.contains("CA:TRUE"))
        #expect(ca.contains("Certificate Sign"))
        // 10 years, give or take a day and the backdated hour.
        #expect(abs(pki.authority.notAfter.timeIntervalSinceNow - 3650 * 86400) < 2 * 86400)
        // The keys are what they claim to be.
        let key = try openssl(["pkey", "-noout", "-text", "-in", member.server.keyPath])
        #expect(key.contains("prime256v1"))
    }

    @Test func secondCallReusesFilesByteForByte() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let first = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let issued = try first.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let (client, clientOutcome) = try first.clientCertificateFiles()
        #expect(clientOutcome == .issued)
        let caBefore = try Data(contentsOf: URL(fileURLWithPath: first.caPath))

        let second = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        #expect(!second.authority.created)
        // Same names in another order and case: still the same certificate.
        let again = try second.memberCertificates(member: "m1", dnsNames: ["LOCALHOST", "example.test", "m1.example.test"],
                                                  ipAddresses: ["127.0.0.1", "10.0.0.1"])
        #expect(again.serverOutcome == .reused && again.peerOutcome == .reused && !again.renewed)
        #expect(again.server == issued.server)
        #expect(again.peer == issued.peer)
        #expect(try Data(contentsOf: URL(fileURLWithPath: second.caPath)) == caBefore)
        let (clientAgain, clientOutcomeAgain) = try second.clientCertificateFiles()
        #expect(clientOutcomeAgain == .reused && clientAgain == client)
    }

    @Test func changedNamesAreReissued() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let issued = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let moved = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: ["10.0.0.9", "127.0.0.1"])
        guard case .renewed(let reason) = moved.serverOutcome else {
            Issue.record("expected a renewal, got \(moved.serverOutcome)"); return
        }
        #expect(reason.contains("10.0.0.9"), "\(reason)")
        #expect(moved.server.certificatePEM != issued.server.certificatePEM)
        #expect(try openssl(["x509", "-noout", "-ext", "subjectAltName", "-in", moved.server.certPath]).contains("IP Address:10.0.0.9"))
    }

    @Test func expiringSoonIsRenewed() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let issued = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        // Put a certificate in place that has only 10 days left.
        let short = try pki.authority.issue(kind: .server, commonName: "m1", dnsNames: memberDNS,
                                            ipAddresses: memberIPs, validityDays: 10)
        try short.certificatePEM.write(toFile: issued.server.certPath, atomically: true, encoding: .utf8)
        try short.privateKeyPEM.write(toFile: issued.server.keyPath, atomically: true, encoding: .utf8)

        let renewed = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        #expect(renewed.serverOutcome == .renewed(reason: "expires in 9 days")
                || renewed.serverOutcome == .renewed(reason: "expires in 10 days"), "\(renewed.serverOutcome)")
        #expect(renewed.peerOutcome == .reused)
        #expect(renewed.renewed)
        #expect(renewed.server.notAfter.timeIntervalSinceNow > 800 * 86400)
        #expect(try mode(renewed.server.keyPath) == 0o600)
        let output = try openssl(["verify", "-CAfile", pki.caPath, renewed.server.certPath])
        #expect(output.contains(": OK"))
    }

    @Test func certificateFromAnotherCAOrBrokenKeyIsReplaced() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki"), other = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let issued = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let foreign = try ClusterPKI(stateDirectory: other.path, cluster: "main")
            .memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        try FileManager.default.removeItem(atPath: issued.server.certPath)
        try FileManager.default.copyItem(atPath: foreign.server.certPath, toPath: issued.server.certPath)
        try "garbage".write(toFile: issued.peer.keyPath, atomically: true, encoding: .utf8)
        let again = try pki.memberCertificates(member: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        // The foreign certificate does not match our key file either; either reason is right.
        guard case .renewed = again.serverOutcome, case .renewed(let peerReason) = again.peerOutcome else {
            Issue.record("expected renewals: \(again.serverOutcome), \(again.peerOutcome)"); return
        }
        #expect(peerReason.contains("private key"), "\(peerReason)")
        #expect(try openssl(["verify", "-CAfile", pki.caPath, again.server.certPath]).contains(": OK"))
    }

    @Test func halfACAIsAnErrorNotAReplacement() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        try FileManager.default.removeItem(atPath: pki.authority.keyPath)
        #expect(throws: PKIError.self) { try ClusterPKI(stateDirectory: state.path, cluster: "main") }
        #expect(FileManager.default.fileExists(atPath: pki.caPath))
    }

    @Test func badNamesAreRefused() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        #expect(throws: PKIError.self) { try ClusterPKI(stateDirectory: state.path, cluster: "../x") }
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        #expect(throws: PKIError.self) { try pki.memberCertificates(member: "a/b", dnsNames: [], ipAddresses: []) }
        #expect(throws: PKIError.self) { try pki.memberCertificates(member: "m1", dnsNames: [], ipAddresses: ["not-an-ip"]) }
        #expect(throws: PKIError.self) { try pki.memberCertificates(member: "m1", dnsNames: ["a b"], ipAddresses: []) }
    }

    @Test func ipAddressesAmongDNSNamesBecomeIPSANs() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        let member = try pki.memberCertificates(member: "m1", dnsNames: ["10.0.0.1", "::1", "m1"], ipAddresses: [])
        let text = try openssl(["x509", "-noout", "-ext", "subjectAltName", "-in", member.server.certPath])
        #expect(text.contains("DNS:m1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.1")
                || text.contains("DNS:m1, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1"), "\(text)")
    }

    /// A CA made elsewhere (here by the openssl command, its key in SEC1 form, as older muster
    /// states and hand-made CAs hold them) is loaded, kept byte for byte, and signs members.
    @Test func aCAMadeByOpenSSLWithASEC1KeyIsLoadedAndSigns() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let dir = ClusterPKI.directory(stateDirectory: state.path, cluster: "main")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", dir + "/ca.key"])
        #expect(try String(contentsOfFile: dir + "/ca.key", encoding: .utf8).hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        _ = try openssl(["req", "-x509", "-new", "-key", dir + "/ca.key", "-subj", "/O=elsewhere/CN=hand-made CA",
                         "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", dir + "/ca.crt"])
        let before = try String(contentsOfFile: dir + "/ca.crt", encoding: .utf8)
        let authority = try CertificateAuthority(directory: dir)
        #expect(!authority.created && authority.certificatePEM == before)
        let issued = try authority.issue(kind: .server, commonName: "m1", dnsNames: memberDNS, ipAddresses: memberIPs)
        let path = state.path + "/m1.crt"
        try issued.certificatePEM.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try openssl(["verify", "-CAfile", dir + "/ca.crt", "-purpose", "sslserver", path]).contains(": OK"))
        // A member certificate never outlives the CA that signed it.
        #expect(issued.notAfter <= authority.notAfter && authority.notAfter.timeIntervalSinceNow < 31 * 86400)
        #expect(try openssl(["x509", "-noout", "-issuer", "-in", path]).contains("hand-made CA"))
    }

    /// What the CA's files must be, each refusal naming the file.
    @Test func aCAWithAnotherKindOfKeyOrNoCAFlagIsRefusedByName() throws {
        for (keyArguments, caFlag, expected) in [
            (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp384r1"], "critical,CA:TRUE,pathlen:0", "not a PEM ECDSA P-256 private key"),
            (["genpkey", "-algorithm", "ed25519"], "critical,CA:TRUE,pathlen:0", "not a PEM ECDSA P-256 private key"),
            (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1"], "critical,CA:FALSE", "not a CA certificate"),
        ] {
            let state = try TemporaryDirectory(prefix: "muster-pki")
            let dir = state.path + "/pki"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = try openssl(keyArguments + ["-out", dir + "/ca.key"])
            _ = try openssl(["req", "-x509", "-new", "-key", dir + "/ca.key", "-subj", "/CN=other", "-days", "30",
                             "-addext", "basicConstraints=" + caFlag, "-out", dir + "/ca.crt"])
            do {
                _ = try CertificateAuthority(directory: dir)
                Issue.record("\(keyArguments) \(caFlag) was accepted")
            } catch let error as PKIError {
                #expect(error.message.hasPrefix(expected), "\(error)")
                #expect(error.path.hasPrefix(dir + "/ca."), "\(error)")
            }
        }
    }

    /// Serial numbers are random and positive; keys are fresh for every certificate.
    @Test func everyCertificateHasItsOwnSerialAndKey() throws {
        let state = try TemporaryDirectory(prefix: "muster-pki")
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "main")
        var serials = Set<String>(), keys = Set<String>()
        for index in 0..<8 {
            let issued = try pki.authority.issue(kind: .client, commonName: "c\(index)", dnsNames: [], ipAddresses: [])
            let path = state.path + "/c\(index).crt"
            try issued.certificatePEM.write(toFile: path, atomically: true, encoding: .utf8)
            let serial = try openssl(["x509", "-noout", "-serial", "-in", path])
            #expect(serial.hasPrefix("serial=") && serial.count > 20, "\(serial)")
            serials.insert(serial)
            keys.insert(issued.privateKeyPEM)
            #expect(issued.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        }
        #expect(serials.count == 8 && keys.count == 8)
    }
}
