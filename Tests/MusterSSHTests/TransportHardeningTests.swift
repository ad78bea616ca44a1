import Foundation
import MusterBasics
import Testing
@testable import MusterSSH
#if canImport(Glibc)
import Glibc
#endif

/// What muster's SSH transport accepts, against a real sshd on loopback: modern algorithms only,
/// known_hosts read as bytes (an unreadable one is an error), sockets no child inherits.
@Suite("SSH transport hardening")
struct TransportHardeningTests {
    @Test func onlyModernAlgorithmsAreNegotiated() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let methods = try await session.negotiatedMethods()
        await session.close()
        let accepted = Set(Connector.modernMethods.flatMap(\.names) + Connector.defaultHostKeyMethods)
        #expect(methods.count == 6 && methods.allSatisfy(accepted.contains), "\(methods)")
    }

    /// libssh2's own defaults would settle for SHA-1 key exchange, CBC and hmac-sha1.
    @Test func aServerOfferingOnlyWeakAlgorithmsIsRefused() async throws {
        let sshd = try await SSHDFixture.start(extraConfig: """
            KexAlgorithms diffie-hellman-group14-sha1
            Ciphers aes128-cbc
            MACs hmac-sha1
            """)
        let error = await expectSSHError { _ = try await sshd.connect() }
        #expect(error?.step == "handshake", "\(String(describing: error))")
        #expect(!sshd.log.contains("Accepted publickey"))
    }

    /// Before: the file was read as UTF-8 or not at all, so one stray byte made it empty and
    /// `--accept-new-host-keys` then trusted a revoked key.
    @Test func aNonUTF8LineSpoilsOnlyItselfAndARevokedKeyStaysRevoked() async throws {
        let sshd = try await SSHDFixture.start()
        let file = "\(sshd.directory)/latin1_known_hosts"
        var bytes = Data("# caf".utf8)
        bytes.append(0xE9)  // Latin-1 é
        bytes.append(contentsOf: Array("\n@revoked * \(try KnownHostsMarkerTests.publicKey(sshd.hostKey + ".pub"))\n".utf8))
        try bytes.write(to: URL(fileURLWithPath: file))
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(knownHosts: file, acceptNew: true)) }
        #expect(error?.kind == .hostKeyRevoked, "\(String(describing: error))")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == bytes, "nothing is recorded")
    }

    @Test func aKnownHostsFileThatCannotBeReadIsAnError() async throws {
        let sshd = try await SSHDFixture.start()
        let path = "\(sshd.directory)/known_hosts_dir"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(knownHosts: path, acceptNew: true)) }
        #expect(error?.kind == .hostKey)
        #expect(error?.message.contains("\(path) exists but cannot be read") == true, "\(String(describing: error))")
        // A file that does not exist is an empty one, as for OpenSSH.
        let missing = "\(sshd.directory)/no_such_known_hosts"
        let session = try await sshd.connect(sshd.target(knownHosts: missing, acceptNew: true))
        await session.close()
    }

    @Test func theSessionSocketIsClosedOnExec() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let socket = try await session.socketDescriptor()
        let flags = fcntl(socket, F_GETFD)
        await session.close()
        #expect(flags >= 0 && flags & FD_CLOEXEC != 0, "flags \(flags)")
    }

    /// Before: a host printing without end grew muster's memory without bound.
    @Test func commandOutputIsBounded() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let noisy = await expectSSHError { _ = try await session.run("head -c \(CommandResult.maxStdoutBytes + 1) /dev/zero") }
        #expect(noisy?.message.contains("more than 64 MiB on stdout") == true, "\(String(describing: noisy))")
        let chatty = try await session.run("head -c \(CommandResult.maxStderrBytes + 4096) /dev/zero >&2; echo done")
        #expect(chatty.stdout == Data("done\n".utf8))
        #expect(chatty.stderr.count < CommandResult.maxStderrBytes + 100)
        #expect(String(decoding: chatty.stderr.suffix(60), as: UTF8.self).contains("4096 more bytes of stderr dropped"))
        await session.close()
    }
}
