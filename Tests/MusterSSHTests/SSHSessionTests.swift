import Foundation
import MusterBasics
import MusterSSH
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Expects `body` to throw an SSHError and returns it.
func expectSSHError(_ body: () async throws -> Void,
                    sourceLocation: SourceLocation = #_sourceLocation) async -> SSHError? {
    do {
        try await body()
        Issue.record("expected an SSHError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as SSHError {
        return error
    } catch {
        Issue.record("expected an SSHError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

@Suite("SSH exec")
struct ExecTests {
    @Test func exitCodesAndStdin() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        #expect(try await session.run("true").exitStatus == 0)
        let failed = try await session.run("echo out; echo err >&2; exit 3")
        #expect(failed.exitStatus == 3)
        #expect(failed.stdoutText == "out\n")
        #expect(failed.stderrText == "err\n")
        #expect(failed.exitSignal == nil)
        let input = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let echoed = try await session.run("cat", stdin: input)
        #expect(echoed.stdout == input)
        let text = "héllo wörld ✓"
        #expect(try await session.run("printf %s \(Shell.quote(text))").stdoutText == text)
        let error = await expectSSHError { try await session.check("exit 7") }
        #expect(error?.kind == .commandFailed)
        await session.close()
        let closed = await expectSSHError { _ = try await session.run("true") }
        #expect(closed?.kind == .closed)
    }

    @Test func megabytesOnBothStreams() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let result = try await session.run("""
            (head -c 3000000 /dev/zero | tr '\\0' a) & (head -c 2000000 /dev/zero | tr '\\0' b >&2); wait
            """)
        #expect(result.exitStatus == 0)
        #expect(result.stdout.count == 3_000_000)
        #expect(result.stderr.count == 2_000_000)
        #expect(result.stdout.allSatisfy { $0 == UInt8(ascii: "a") })
        #expect(result.stderr.allSatisfy { $0 == UInt8(ascii: "b") })
    }

    @Test func exitBySignal() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let result = try await session.run("kill -TERM $$")
        #expect(result.exitSignal == "TERM")
        #expect(result.exitStatus == -1)
        #expect(!result.succeeded)
    }

    @Test func commandTimeout() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let error = await expectSSHError { _ = try await session.run("sleep 30", timeout: 1) }
        #expect(error?.kind == .timeout)
        // The session stays usable afterwards.
        #expect(try await session.run("echo again").stdoutText == "again\n")
    }
}

@Suite("SSH upload")
struct UploadTests {
    @Test func twentyMegabytesThenSkipped() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let local = "\(sshd.directory)/payload.bin"
        var bytes = [UInt8](repeating: 0, count: 20 << 20)
        for index in stride(from: 0, to: bytes.count, by: 8) {
            let value = UInt64(index).multipliedReportingOverflow(by: 0x9E37_79B9_7F4A_7C15).partialValue
            withUnsafeBytes(of: value) { bytes.replaceSubrange(index..<index + 8, with: $0) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: local))
        let remote = "\(sshd.directory)/remote/deep/etcd"
        let first = try await session.upload(from: local, to: remote, mode: 0o755, owner: "root")
        #expect(!first.skipped)
        #expect(first.bytesSent == 20 << 20)
        #expect(try Digest.sha256Hex(fileAt: remote) == Digest.sha256Hex(fileAt: local))
        let remoteSum = try await session.run("sha256sum \(remote)").stdoutText.prefix(64)
        #expect(remoteSum == (try Digest.sha256Hex(fileAt: local)))
        let attributes = try FileManager.default.attributesOfItem(atPath: remote)
        #expect((attributes[.posixPermissions] as? Int) == 0o755)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: "\(sshd.directory)/remote/deep")
        #expect(leftovers == ["etcd"])

        let inode = attributes[.systemFileNumber] as? UInt64
        let mtime = attributes[.modificationDate] as? Date
        let again = try await session.upload(from: local, to: remote, mode: 0o755, owner: "root")
        #expect(again.skipped)
        #expect(again.bytesSent == 0)
        let after = try FileManager.default.attributesOfItem(atPath: remote)
        #expect(after[.systemFileNumber] as? UInt64 == inode)
        #expect(after[.modificationDate] as? Date == mtime)

        // Changed content replaces the file atomically (new inode), mode applied.
        let small = try await session.upload(data: Data("hello\n".utf8), to: remote, mode: 0o640)
        #expect(!small.skipped && small.bytesSent == 6)
        #expect(try String(contentsOfFile: remote, encoding: .utf8) == "hello\n")
        let replaced = try FileManager.default.attributesOfItem(atPath: remote)
        #expect((replaced[.posixPermissions] as? Int) == 0o640)
        #expect(replaced[.systemFileNumber] as? UInt64 != inode)
    }

    @Test func uploadFailureNamesTheHost() async throws {
        let sshd = try await SSHDFixture.start()
        let session = try await sshd.connect()
        let error = await expectSSHError {
            _ = try await session.upload(data: Data("x".utf8), to: "/proc/muster/nope", mode: 0o644)
        }
        #expect(error?.kind == .upload)
        #expect(error?.host == "test")
    }
}

@Suite("SSH host keys")
struct HostKeyTests {
    @Test func unknownHostRefused() async throws {
        let sshd = try await SSHDFixture.start()
        let empty = "\(sshd.directory)/empty_known_hosts"
        FileManager.default.createFile(atPath: empty, contents: nil)
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(knownHosts: empty)) }
        #expect(error?.kind == .hostKeyUnknown)
        let fingerprint = try await offPool { try SSHDFixture.fingerprint(ofPublicKey: sshd.hostKey + ".pub") }
        #expect(error?.message.contains(fingerprint) == true)
        #expect(error?.message.contains("--accept-new-host-keys") == true)
    }

    @Test func acceptNewRecordsTheKey() async throws {
        let sshd = try await SSHDFixture.start()
        let file = "\(sshd.directory)/new/known_hosts"
        let session = try await sshd.connect(sshd.target(knownHosts: file, acceptNew: true))
        await session.close()
        let name = "[127.0.0.1]:\(sshd.port)"
        // OpenSSH itself finds the recorded key.
        let found = try await offPool { try Child.run(["ssh-keygen", "-F", name, "-f", file], allowFailure: true) }
        #expect(found.status == 0)
        let hostKey = try String(contentsOfFile: sshd.hostKey + ".pub", encoding: .utf8)
            .split(separator: " ")[1]
        #expect(found.output.contains(hostKey))
        // Now known: connects without accept-new, also once the file is hashed.
        _ = try await sshd.connect(sshd.target(knownHosts: file))
        _ = try await offPool { try Child.run(["ssh-keygen", "-H", "-f", file]) }
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("|1|"))
        let again = try await sshd.connect(sshd.target(knownHosts: file))
        #expect(try await again.run("echo hashed").stdoutText == "hashed\n")
    }

    @Test func changedKeyRefusedEvenWithAcceptNew() async throws {
        let sshd = try await SSHDFixture.start()
        let other = try await offPool { try sshd.makeKey("impostor") }
        let otherPublic = try String(contentsOfFile: other + ".pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let file = "\(sshd.directory)/changed_known_hosts"
        try "[127.0.0.1]:\(sshd.port) \(otherPublic)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let error = await expectSSHError {
            _ = try await sshd.connect(sshd.target(knownHosts: file, acceptNew: true))
        }
        #expect(error?.kind == .hostKeyChanged)
        let expected = try await offPool { try SSHDFixture.fingerprint(ofPublicKey: other + ".pub") }
        let offered = try await offPool { try SSHDFixture.fingerprint(ofPublicKey: sshd.hostKey + ".pub") }
        let message = error?.message ?? ""
        #expect(message.contains(expected))
        #expect(message.contains(offered))
        #expect(message.contains("[127.0.0.1]:\(sshd.port)"))
    }
}

@Suite("SSH authentication")
struct AuthTests {
    @Test func agentAuthentication() async throws {
        let sshd = try await SSHDFixture.start()
        let socketPath = "\(sshd.directory)/agent.sock"
        let agent = try Child(["/usr/bin/ssh-agent", "-D", "-a", socketPath])
        defer { agent.stop() }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socketPath) { usleep(50_000) }
        // A decoy first, so the configured-key-first ordering matters.
        let decoy = try await offPool { try sshd.makeKey("decoy") }
        _ = try await offPool { try Child.run(["ssh-add", decoy], environment: ["SSH_AUTH_SOCK": socketPath]) }
        _ = try await offPool { try Child.run(["ssh-add", sshd.clientKey], environment: ["SSH_AUTH_SOCK": socketPath]) }
        // Only the agent can authenticate: no identity file is readable.
        var target = sshd.target(identity: "\(sshd.directory)/does-not-exist")
        target.agentSocket = socketPath
        let session = try await sshd.connect(target)
        #expect(try await session.run("echo via-agent").stdoutText == "via-agent\n")
        #expect(sshd.log.contains("Accepted publickey"))
    }

    @Test func wrongKeyRefused() async throws {
        let sshd = try await SSHDFixture.start()
        let stranger = try await offPool { try sshd.makeKey("stranger") }
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(identity: stranger)) }
        #expect(error?.kind == .auth)
        #expect(error?.message.contains(stranger) == true)
        #expect(error?.message.contains("rsa-sha2") == false)
    }

    @Test func rsaKeyErrorExplains() async throws {
        let sshd = try await SSHDFixture.start()
        let rsa = try await offPool { try sshd.makeKey("rsa", type: "rsa") }
        try sshd.authorize(rsa + ".pub")
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(identity: rsa)) }
        #expect(error?.kind == .auth)
        #expect(error?.message.contains("rsa-sha2") == true)
        #expect(error?.message.contains("ed25519 or ECDSA") == true)
    }

    @Test func ecdsaAndEncryptedKeys() async throws {
        let sshd = try await SSHDFixture.start()
        let ecdsa = try await offPool { try sshd.makeKey("ecdsa", type: "ecdsa") }
        try sshd.authorize(ecdsa + ".pub")
        let session = try await sshd.connect(sshd.target(identity: ecdsa))
        #expect(try await session.run("echo ecdsa").stdoutText == "ecdsa\n")

        let locked = try await offPool { try sshd.makeKey("locked", passphrase: "correct horse") }
        try sshd.authorize(locked + ".pub")
        unsetenv("MUSTER_SSH_PASSPHRASE")
        let error = await expectSSHError { _ = try await sshd.connect(sshd.target(identity: locked)) }
        #expect(error?.kind == .auth)
        #expect(error?.message.contains("MUSTER_SSH_PASSPHRASE") == true)
        #expect(error?.message.contains("correct horse") == false)
        setenv("MUSTER_SSH_PASSPHRASE", "correct horse", 1)
        defer { unsetenv("MUSTER_SSH_PASSPHRASE") }
        let unlocked = try await sshd.connect(sshd.target(identity: locked))
        #expect(try await unlocked.run("echo unlocked").stdoutText == "unlocked\n")
    }
}

@Suite("SSH connect failures")
struct ConnectFailureTests {
    @Test func connectionRefused() async throws {
        let port = try SSHDFixture.freePort()
        let target = SSHTarget(name: "nobody-home", address: "127.0.0.1", port: port,
                               identityFile: "/nonexistent", agentSocket: nil,
                               knownHostsFile: "/nonexistent", connectTimeout: 5)
        let error = await expectSSHError { _ = try await SSHSession.connect(target) }
        #expect(error?.kind == .connect)
        #expect(error?.message.contains("Connection refused") == true)
        #expect(error?.description.hasPrefix("nobody-home: connect:") == true)
    }

    @Test func handshakeTimeout() async throws {
        // A socket that listens but never speaks: the kernel completes TCP, SSH never starts.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                _ = bind(fd, pointer, length)
                return getsockname(fd, pointer, &length)
            }
        }
        #expect(listen(fd, 8) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let target = SSHTarget(name: "silent", address: "127.0.0.1", port: port,
                               identityFile: "/nonexistent", agentSocket: nil,
                               knownHostsFile: "/nonexistent", connectTimeout: 1)
        let started = Date()
        let error = await expectSSHError { _ = try await SSHSession.connect(target) }
        #expect(error?.kind == .timeout)
        #expect(error?.message.contains("handshake") == true)
        // Bounded, not timed: a hang would run into the test runner, a generous cap says which.
        #expect(Date().timeIntervalSince(started) < 30)
    }
}

@Suite("SSH many hosts and tunnels")
struct ManyAndTunnelTests {
    @Test func tenSessionsServedConcurrently() async throws {
        let sshd = try await SSHDFixture.start()
        let markers = "\(sshd.directory)/markers"
        try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
        let targets = (0..<10).map { sshd.target(name: "host\($0)") }
        // Each command waits (bounded, 20 s) until all ten have checked in: only possible if the
        // server runs all ten sessions at the same time.
        let counts = try await withSessions(targets, parallel: 10) { sessions in
            try await SSH.boundedMap(Array(sessions.enumerated()), parallel: 10) { index, session in
                let script = """
                    touch \(markers)/m\(index); n=0
                    while [ "$(ls \(markers) | wc -l)" -lt 10 ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done
                    ls \(markers) | wc -l
                    """
                return (try? await session.run(script).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "error"
            }
        }
        #expect(counts == Array(repeating: "10", count: 10))
    }

    @Test func tunnelToHTTPServer() async throws {
        let sshd = try await SSHDFixture.start()
        let www = "\(sshd.directory)/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        let body = String(repeating: "muster tunnel ", count: 20_000)
        try body.write(toFile: "\(www)/index.txt", atomically: true, encoding: .utf8)
        let httpPort = try SSHDFixture.freePort()
        let http = try Child(["python3", "-m", "http.server", String(httpPort), "--bind", "127.0.0.1",
                              "--directory", www])
        defer { http.stop() }
        #expect(LoopbackClient.waitListening(port: httpPort))

        let session = try await sshd.connect()
        let tunnel = try await session.openTunnel(toHost: "127.0.0.1", port: httpPort)
        #expect(tunnel.localPort != httpPort)
        for _ in 0..<2 {
            let port = tunnel.localPort
            let reply = try await Task.detached {
                try LoopbackClient.exchange(port: port, request: "GET /index.txt HTTP/1.0\r\n\r\n")
            }.value
            let text = String(decoding: reply, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.0 200"))
            #expect(text.hasSuffix(body))
        }
        // Commands still run on the same session while the tunnel is open.
        #expect(try await session.run("echo side").stdoutText == "side\n")
        await tunnel.close()
        #expect(sshd.log.contains("direct-tcpip") || sshd.log.contains("Accepted"))
    }
}
