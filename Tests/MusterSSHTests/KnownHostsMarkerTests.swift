import Foundation
import MusterBasics
import Testing
@testable import MusterSSH

/// known_hosts as OpenSSH reads it, against a real sshd on loopback: `@revoked` keys are refused
/// outright, `@cert-authority` hosts are refused naming the line (libssh2 cannot check host
/// certificates), and a host pinned with ECDSA is asked for that key first.
@Suite("SSH known_hosts markers")
struct KnownHostsMarkerTests {
    /// "TYPE BASE64" of a public key file.
    static func publicKey(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    }

    @Test func aRevokedKeyIsRefusedEvenWithAcceptNew() async throws {
        let sshd = try await SSHDFixture.start()
        let file = "\(sshd.directory)/revoked_known_hosts"
        // Line 2, for every host: the wildcard is OpenSSH's usual way to revoke a key.
        let text = "# revoked after the incident\n@revoked * \(try Self.publicKey(sshd.hostKey + ".pub"))\n"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let error = await expectSSHError {
            _ = try await sshd.connect(sshd.target(knownHosts: file, acceptNew: true))
        }
        #expect(error?.kind == .hostKeyRevoked)
        #expect(error?.message.contains("\(file):2") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("@revoked") == true)
        // Nothing was recorded: the revoked key stays the only entry.
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text)
        #expect(!sshd.log.contains("Accepted publickey"), "muster authenticated to a host whose key is revoked")
    }

    @Test func aRevokedKeyWinsOverAPlainLineForTheSameKey() async throws {
        let sshd = try await SSHDFixture.start()
        let file = "\(sshd.directory)/both_known_hosts"
        let key = try Self.publicKey(sshd.hostKey + ".pub")
        try "[127.0.0.1]:\(sshd.port) \(key)\n@revoked [127.0.0.1]:\(sshd.port) \(key)\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(knownHosts: file)) }
        #expect(error?.kind == .hostKeyRevoked)
        #expect(error?.message.contains("\(file):2") == true, "\(error?.message ?? "")")
    }

    @Test func aCertAuthorityLineIsRefusedNamingItsLine() async throws {
        let sshd = try await SSHDFixture.start()
        let authority = try await offPool { try sshd.makeKey("host_ca") }
        let file = "\(sshd.directory)/ca_known_hosts"
        let text = "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n"
            + "@cert-authority [127.0.0.1]:* \(try Self.publicKey(authority + ".pub"))\n"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let error = await expectSSHError {
            _ = try await sshd.connect(sshd.target(knownHosts: file, acceptNew: true))
        }
        #expect(error?.kind == .hostKeyUnknown)
        let message = error?.message ?? ""
        #expect(message.contains("@cert-authority line \(file):2"), "\(message)")
        #expect(message.contains("cannot verify OpenSSH host certificates"), "\(message)")
        let offered = try await offPool { try SSHDFixture.fingerprint(ofPublicKey: sshd.hostKey + ".pub") }
        #expect(message.contains(offered), "\(message)")
        // --accept-new-host-keys did not trust the plain key behind the CA's back.
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text)

        // The host's own key beside the CA line is what OpenSSH accepts too.
        try (text + "[127.0.0.1]:\(sshd.port) \(try Self.publicKey(sshd.hostKey + ".pub"))\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let session = try await sshd.connect(sshd.target(knownHosts: file))
        #expect(try await session.run("echo in").stdoutText == "in\n")
    }

    @Test func aHostPinnedWithECDSAIsAskedForThatKey() async throws {
        let keys = FileManager.default.temporaryDirectory.path + "/muster-ecdsa-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: keys) }
        let ecdsa = try await offPool { try SSHDFixture.makeKey(in: keys, name: "host_ecdsa", type: "ecdsa") }
        // The server has both; ed25519 (the fixture's) would be negotiated first by default.
        let sshd = try await SSHDFixture.start(extraConfig: "HostKey \(ecdsa)")
        let file = "\(sshd.directory)/ecdsa_known_hosts"
        let text = "[127.0.0.1]:\(sshd.port) \(try Self.publicKey(ecdsa + ".pub"))\n"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let session = try await sshd.connect(sshd.target(knownHosts: file))
        #expect(try await session.run("echo ecdsa").stdoutText == "ecdsa\n")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text, "nothing new to record")
    }

    @Test func hostPatternsMatchAsOpenSSHDoes() {
        #expect(KnownHosts.matches("[127.0.0.1]:2222", "[127.0.0.1]:*"))
        #expect(KnownHosts.matches("db1.example.test", "web?.example.test,DB*.EXAMPLE.test"))
        #expect(!KnownHosts.matches("db1.example.test", "*.example.test,!db1.example.test"))
        #expect(!KnownHosts.matches("10.0.0.1", "10.0.0.10"))
        #expect(!KnownHosts.matches("10.0.0.1", "!10.0.0.1"))
        // `ssh-keygen -H` of "10.0.0.1", salt and hash as OpenSSH computes them.
        let salt = Data((0..<20).map { UInt8($0) })
        let hash = Digest.hmacSHA1(key: salt, message: Data("10.0.0.1".utf8))
        let hashed = "|1|\(salt.base64EncodedString())|\(hash.base64EncodedString())"
        #expect(KnownHosts.matches("10.0.0.1", hashed))
        #expect(!KnownHosts.matches("10.0.0.2", hashed))
    }

    @Test func pinnedTypesComeFirstInTheOffer() {
        let file = KnownHosts(path: "test", text: """
            @revoked 10.0.0.1 ssh-rsa AAAA
            10.0.0.1 ecdsa-sha2-nistp384 AAAA
            other ssh-rsa AAAA
            10.0.0.1 ssh-ed25519-cert-v01@openssh.com AAAA
            """)
        let methods = Connector.hostKeyMethods(pinned: file.pinnedKeyTypes(for: "10.0.0.1"))
        #expect(methods == ["ecdsa-sha2-nistp384", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521"])
    }
}
