internal import CLibSSH2
import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// Opening a session: TCP connect with our own timeout, handshake, host key, authentication.
enum Connector {
    static func open(_ target: SSHTarget) throws -> SessionHandle {
        let deadline = Deadline(seconds: target.connectTimeout)
        let fd = try tcpConnect(target, deadline)
        guard let raw = libssh2_session_init_ex(nil, nil, nil, nil) else {
            close(fd)
            throw SSHError(host: target.name, step: "connect", kind: .connect,
                           message: "libssh2_session_init failed")
        }
        let session = SessionHandle(raw: raw, socket: fd, host: target.name,
                                    timeoutMilliseconds: Int(target.commandTimeout * 1000))
        let knownHosts: KnownHosts
        do {
            knownHosts = try KnownHosts(path: target.knownHostsFile)
        } catch {
            throw SSHError(host: target.name, step: "host key", kind: .hostKey, message: "\(error)")
        }
        let methods = hostKeyMethods(pinned: knownHosts.pinnedKeyTypes(for: target.knownHostsName))
        _ = libssh2_session_method_pref(raw, LIBSSH2_METHOD_HOSTKEY, methods.joined(separator: ","))
        for (method, names) in modernMethods {
            _ = libssh2_session_method_pref(raw, method, names.joined(separator: ","))
        }
        let where_ = "\(target.address):\(target.port)"
        let rc = try session.retry(
            "handshake", deadline,
            what: "waiting for the SSH handshake with \(where_) after \(format(target.connectTimeout)) s"
                + " (the port accepted TCP but no SSH server answered)"
        ) { Int(libssh2_session_handshake(raw, fd)) }
        if rc != 0 {
            throw session.error("handshake", .connect,
                                "SSH handshake with \(where_) failed: \(session.lastError)")
        }
        try verifyHostKey(session, target, knownHosts)
        try authenticate(session, target, Deadline(seconds: max(target.connectTimeout, 30)))
        libssh2_keepalive_config(raw, 0, UInt32(max(1, target.keepaliveInterval)))
        return session
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    // MARK: TCP

    static func tcpConnect(_ target: SSHTarget, _ deadline: Deadline) throws -> Int32 {
        func fail(_ kind: SSHError.Kind, _ message: String) -> SSHError {
            SSHError(host: target.name, step: "connect", kind: kind, message: message)
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(target.address, String(target.port), &hints, &list)
        guard gai == 0, let first = list else {
            throw fail(.connect, "cannot resolve \(target.address): \(String(cString: gai_strerror(gai)))")
        }
        defer { freeaddrinfo(list) }
        let where_ = "\(target.address):\(target.port)"
        var problem = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            next = info.pointee.ai_next
            // Close-on-exec: a child muster starts (ssh-agent's, etcd --version, ip) must never
            // inherit a root session's socket.
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue),
                            info.pointee.ai_protocol)
            if fd < 0 { problem = String(cString: strerror(errno)); continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
            var rc = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen)
            if rc != 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                repeat {
                    rc = poll(&pfd, 1, Int32(deadline.remainingMilliseconds))
                } while rc < 0 && errno == EINTR
                if rc == 0 {
                    close(fd)
                    throw fail(.timeout, "TCP connect to \(where_) timed out after "
                               + "\(format(target.connectTimeout)) s")
                }
                var soError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
                if soError != 0 { errno = soError; rc = -1 } else { rc = 0 }
            }
            if rc == 0 {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            problem = String(cString: strerror(errno))
            close(fd)
        }
        throw fail(.connect, "cannot connect to \(where_): \(problem)")
    }

    // MARK: Host keys

    /// "SHA256:" and the unpadded base64 of the key blob's SHA-256, as OpenSSH prints it.
    static func fingerprint(_ blob: Data) -> String {
        let hex = Array(Digest.sha256Hex(blob).utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        for index in stride(from: 0, to: hex.count, by: 2) {
            bytes.append(nibble(hex[index]) << 4 | nibble(hex[index + 1]))
        }
        let base64 = Data(bytes).base64EncodedString()
        return "SHA256:" + base64.replacingOccurrences(of: "=", with: "")
    }

    /// The key type name at the start of an SSH key blob ("ssh-ed25519", "ecdsa-sha2-nistp256").
    static func keyTypeName(_ blob: Data) -> String {
        let bytes = [UInt8](blob.prefix(64))
        guard bytes.count >= 4 else { return "unknown" }
        let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard length > 0, 4 + length <= bytes.count else { return "unknown" }
        return String(decoding: bytes[4..<(4 + length)], as: UTF8.self)
    }

    /// OpenSSH's own order when nothing is pinned (so a key recorded by `ssh` is the one
    /// negotiated); the types known_hosts pins for the host first, as OpenSSH does, so a host
    /// pinned with ECDSA proves that key instead of offering an ed25519 one we would call unknown.
    /// `ssh-rsa` (RSA with SHA-1 signatures) is left out: libssh2 1.10 has no `rsa-sha2-*`, and
    /// OpenSSH has not offered `ssh-rsa` by default since 8.8.
    static let defaultHostKeyMethods = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    ]

    /// Key exchange, ciphers and MACs muster accepts: libssh2's defaults also offer SHA-1 key
    /// exchanges, CBC modes, arcfour, 3DES, hmac-sha1 and hmac-md5. What is left is what libssh2
    /// 1.10 (Debian 12) has of OpenSSH 9's defaults (no GCM, ChaCha20 or ETM MACs before 1.11).
    static let modernMethods: [(method: Int32, names: [String])] = [
        (LIBSSH2_METHOD_KEX, ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
                              "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256",
                              "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512",
                              "diffie-hellman-group14-sha256"]),
        (LIBSSH2_METHOD_CRYPT_CS, ["aes256-ctr", "aes192-ctr", "aes128-ctr"]),
        (LIBSSH2_METHOD_CRYPT_SC, ["aes256-ctr", "aes192-ctr", "aes128-ctr"]),
        (LIBSSH2_METHOD_MAC_CS, ["hmac-sha2-256", "hmac-sha2-512"]),
        (LIBSSH2_METHOD_MAC_SC, ["hmac-sha2-256", "hmac-sha2-512"]),
    ]

    static func hostKeyMethods(pinned: [String]) -> [String] {
        let first = pinned.filter(defaultHostKeyMethods.contains)
        return first + defaultHostKeyMethods.filter { !first.contains($0) }
    }

    static func verifyHostKey(_ session: SessionHandle, _ target: SSHTarget,
                              _ knownHosts: KnownHosts) throws {
        let step = "host key"
        var length = 0
        var type: Int32 = 0
        guard let pointer = libssh2_session_hostkey(session.raw, &length, &type) else {
            throw session.error(step, .hostKey, "server sent no host key: \(session.lastError)")
        }
        let key = Data(bytes: pointer, count: length)
        let offered = "\(keyTypeName(key)) \(fingerprint(key))"
        let name = target.knownHostsName
        let file = target.knownHostsFile
        func describe(_ entry: KnownHosts.Entry) -> String { "\(entry.keyType) \(fingerprint(entry.key))" }
        switch knownHosts.verdict(for: name, key: key) {
        case .known:
            return
        case .revoked(let entry):
            throw session.error(step, .hostKeyRevoked, """
                REVOKED HOST KEY for \(name): the server offered \(offered), which \(file):\(entry.line) \
                marks @revoked. Refusing to connect (--accept-new-host-keys never accepts a revoked key).
                """)
        case .certifiedOnly(let entry):
            // libssh2 1.10 negotiates no *-cert-v01@openssh.com host key algorithm, so the server
            // never shows its certificate: trusting its plain key on first use would bypass the CA.
            throw session.error(step, .hostKeyUnknown, """
                \(name) is vouched for by the @cert-authority line \(file):\(entry.line), but muster \
                (libssh2) cannot verify OpenSSH host certificates. Refusing to connect: add the \
                host's own key (ssh-keyscan -t \(keyTypeName(key)) -p \(target.port) \(target.address), \
                checked against \(offered)) to \(file).
                """)
        case .changed(let entry):
            throw session.error(step, .hostKeyChanged, """
                HOST KEY CHANGED for \(name): \(file):\(entry.line) expects \(describe(entry)), the \
                server offered \(offered). Refusing to connect: this may be an attack, or the host \
                was reinstalled (then remove the old entry: ssh-keygen -R '\(name)' -f \(file)).
                """)
        case .unknown(let otherTypes):
            let others = otherTypes.isEmpty ? "" : " (\(file) pins only " + otherTypes.map {
                "\(describe($0)) at line \($0.line)"
            }.joined(separator: ", ") + ", which the server did not offer)"
            guard target.acceptNewHostKeys else {
                throw session.error(step, .hostKeyUnknown, """
                    unknown host key for \(name): \(offered) is not in \(file)\(others). \
                    Check the fingerprint, then rerun with --accept-new-host-keys to record it.
                    """)
            }
            guard target.recordHostKeys else { return }
            let line = "\(name) \(keyTypeName(key)) \(key.base64EncodedString())\n"
            do {
                try appendLine(line, to: file)
            } catch {
                throw session.error(step, .hostKey, "cannot record the host key in \(file): \(error)")
            }
        }
    }

    static func appendLine(_ line: String, to file: String) throws {
        let directory = (file as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        let fd = Glibc.open(file, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        // Start on a fresh line if the file does not end with one.
        var last: UInt8 = 0
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 {
            let readFD = Glibc.open(file, O_RDONLY)
            if readFD >= 0 {
                _ = pread(readFD, &last, 1, size - 1)
                close(readFD)
            }
        }
        let text = (size > 0 && last != 10 ? "\n" : "") + line
        let written = text.withCString { write(fd, $0, strlen($0)) }
        guard written == text.utf8.count else { throw POSIXError(.EIO) }
    }

    // MARK: Authentication

    /// What a private key file holds, read without decrypting it.
    struct KeyInfo {
        var type: String?
        var encrypted: Bool
        var isRSA: Bool { type == "ssh-rsa" }
    }

    static func keyInfo(_ path: String) -> KeyInfo {
        if let pub = try? String(contentsOfFile: path + ".pub", encoding: .utf8),
           let first = pub.split(separator: " ").first {
            let encrypted = keyInfoFromPrivate(path).encrypted
            return KeyInfo(type: String(first), encrypted: encrypted)
        }
        return keyInfoFromPrivate(path)
    }

    private static func keyInfoFromPrivate(_ path: String) -> KeyInfo {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return KeyInfo(type: nil, encrypted: false)
        }
        if text.contains("BEGIN RSA PRIVATE KEY") {
            return KeyInfo(type: "ssh-rsa", encrypted: text.contains("ENCRYPTED"))
        }
        if text.contains("BEGIN EC PRIVATE KEY") {
            return KeyInfo(type: "ecdsa", encrypted: text.contains("ENCRYPTED"))
        }
        guard text.contains("BEGIN OPENSSH PRIVATE KEY") else {
            return KeyInfo(type: nil, encrypted: text.contains("ENCRYPTED"))
        }
        let body = text.split(whereSeparator: \.isNewline)
            .filter { !$0.hasPrefix("-----") }.joined()
        guard let blob = Data(base64Encoded: body) else { return KeyInfo(type: nil, encrypted: false) }
        // "openssh-key-v1\0", string cipher, string kdf, string kdf options, uint32 n, string key.
        var reader = BlobReader(bytes: [UInt8](blob))
        guard reader.skip(15), let cipher = reader.string(), reader.string() != nil,
              reader.string() != nil, reader.skip(4), let publicKey = reader.string()
        else { return KeyInfo(type: nil, encrypted: false) }
        let encrypted = String(decoding: cipher, as: UTF8.self) != "none"
        return KeyInfo(type: keyTypeName(Data(publicKey)), encrypted: encrypted)
    }

    struct BlobReader {
        var bytes: [UInt8]
        var offset = 0

        mutating func skip(_ count: Int) -> Bool {
            guard offset + count <= bytes.count else { return false }
            offset += count
            return true
        }

        mutating func string() -> [UInt8]? {
            guard offset + 4 <= bytes.count else { return nil }
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            guard offset + 4 + length <= bytes.count else { return nil }
            defer { offset += 4 + length }
            return Array(bytes[offset + 4..<offset + 4 + length])
        }
    }

    static let rsaExplanation = """
        RSA keys cannot work here: libssh2 1.10 signs only with ssh-rsa (SHA-1), it cannot do \
        rsa-sha2-256/512, and OpenSSH 8.8 and later (9.x included) refuse ssh-rsa signatures. \
        Use an ed25519 or ECDSA key.
        """

    static func authenticate(_ session: SessionHandle, _ target: SSHTarget, _ deadline: Deadline) throws {
        let step = "authenticate"
        let user = target.user
        let userLength = UInt32(user.utf8.count)
        var tried = [String]()
        var sawRSA = false
        let identity = target.identityFile.flatMap { $0.isEmpty ? nil : $0 }
        let info = identity.map(keyInfo)

        if let socketPath = target.agentSocket, !socketPath.isEmpty, let agent = AgentHandle(session: session) {
            libssh2_agent_set_identity_path(agent.raw, socketPath)
            if libssh2_agent_connect(agent.raw) == 0 {
                agent.connected = true
                if libssh2_agent_list_identities(agent.raw) == 0 {
                    var identities = [(pointer: UnsafeMutablePointer<libssh2_agent_publickey>, blob: Data)]()
                    var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
                    while true {
                        var current: UnsafeMutablePointer<libssh2_agent_publickey>?
                        guard libssh2_agent_get_identity(agent.raw, &current, previous) == 0,
                              let current else { break }
                        let blob = Data(bytes: current.pointee.blob, count: Int(current.pointee.blob_len))
                        identities.append((current, blob))
                        previous = current
                    }
                    // The configured key first, to stay under sshd's MaxAuthTries.
                    if let identity, let wanted = publicKeyBlob(identity + ".pub"),
                       let index = identities.firstIndex(where: { $0.blob == wanted }) {
                        identities.insert(identities.remove(at: index), at: 0)
                    }
                    for candidate in identities.prefix(5) {
                        let rc = try session.retry(step, deadline, what: "authenticating") {
                            Int(libssh2_agent_userauth(agent.raw, user, candidate.pointer))
                        }
                        if rc == 0 { return }
                        let type = keyTypeName(candidate.blob)
                        if type == "ssh-rsa" { sawRSA = true }
                        let comment = candidate.pointer.pointee.comment.map { String(cString: $0) } ?? ""
                        tried.append("agent key \(type) \(fingerprint(candidate.blob)) \(comment)"
                                     .trimmingCharacters(in: .whitespaces) + ": refused")
                    }
                    if identities.isEmpty { tried.append("ssh-agent at \(socketPath): no keys") }
                } else {
                    tried.append("ssh-agent at \(socketPath): cannot list keys: \(session.lastError)")
                }
            } else {
                tried.append("ssh-agent at \(socketPath): cannot connect: \(session.lastError)")
            }
        }

        if let identity {
            if !FileManager.default.isReadableFile(atPath: identity) {
                tried.append("identity file \(identity): not readable")
            } else {
                let publicPath = identity + ".pub"
                let pub = FileManager.default.fileExists(atPath: publicPath) ? publicPath : nil
                let passphrase = ProcessInfo.processInfo.environment["MUSTER_SSH_PASSPHRASE"]
                let rc = try session.retry(step, deadline, what: "authenticating") {
                    Int(libssh2_userauth_publickey_fromfile_ex(
                        session.raw, user, userLength, pub, identity, passphrase))
                }
                if rc == 0 { return }
                var text = "identity file \(identity): \(session.lastError)"
                if info?.encrypted == true && passphrase == nil {
                    text += " (the key is encrypted: set MUSTER_SSH_PASSPHRASE)"
                }
                tried.append(text)
                if info?.isRSA == true { sawRSA = true }
            }
        }

        if tried.isEmpty {
            throw session.error(step, .auth, "no credentials for \(user)@\(target.address): "
                                + "configure an identity file or run an ssh-agent (SSH_AUTH_SOCK)")
        }
        var message = "authentication as \(user) failed; tried " + tried.joined(separator: "; ")
        if sawRSA { message += ". " + rsaExplanation }
        throw session.error(step, .auth, message)
    }

    /// The key blob of an OpenSSH public key file ("type base64 comment").
    static func publicKeyBlob(_ path: String) -> Data? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2 else { return nil }
        return Data(base64Encoded: String(fields[1]))
    }
}
