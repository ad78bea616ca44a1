import Foundation
import MusterBasics
import MusterSSH
#if canImport(Glibc)
import Glibc
#endif

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// Runs blocking work (tools, sshd start-up) on its own thread, never on Swift's
/// cooperative pool. (Foundation's Process is not used: in the test runner its children
/// inherited blocked signals and their termination was never delivered.)
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A child process started with posix_spawn, with a clean signal mask and default handlers (a test
/// runner's blocked signals would otherwise be inherited and SIGTERM ignored). Reaped with waitpid,
/// every wait bounded.
final class Child: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    init(_ arguments: [String], environment: [String: String] = [:], output: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let sink = output ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, sink, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw FixtureError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    /// The exit status once the child has ended, waiting at most `timeout` seconds.
    @discardableResult
    func wait(timeout: Double) -> Int32? {
        if let status { return status }
        let end = Date().addingTimeInterval(timeout)
        repeat {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                let code = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status = code
                return code
            }
            usleep(20_000)
        } while Date() < end
        return nil
    }

    var isRunning: Bool { wait(timeout: 0) == nil }

    /// SIGTERM, then SIGKILL if it lingers; always reaped.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if wait(timeout: 3) == nil {
            kill(pid, SIGKILL)
            wait(timeout: 5)
        }
    }

    deinit { stop() }

    /// Runs a tool to completion (at most `timeout` s); throws when it fails. Returns its output.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:],
                    timeout: Double = 60, allowFailure: Bool = false) throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.path + "/muster-child-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try Child(arguments, environment: environment, output: log)
        guard let status = child.wait(timeout: timeout) else {
            child.stop()
            throw FixtureError(description: "\(arguments.joined(separator: " ")): timed out")
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if status != 0 && !allowFailure {
            throw FixtureError(description: "\(arguments.joined(separator: " ")): exit \(status): \(output)")
        }
        return (status, output)
    }
}

/// A real OpenSSH sshd on 127.0.0.1 and a random high port, with its own host key, client key and
/// authorized_keys in a temporary directory. Started as a child (`sshd -D -e -f CONFIG`), killed by
/// `stop()` or deinit. A missing sshd is an error, never a skip.
final class SSHDFixture: @unchecked Sendable {
    static let sshdPath = "/usr/sbin/sshd"

    let directory: String
    let port: Int
    let hostKey: String
    let clientKey: String
    let knownHosts: String
    let authorizedKeys: String
    let logPath: String
    private let process: Child

    init(extraConfig: String = "") throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sshdPath) else {
            throw FixtureError(description: """
                OpenSSH server not found at \(Self.sshdPath): these tests need a real sshd \
                (apt-get install openssh-server)
                """)
        }
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let base = FileManager.default.temporaryDirectory.path
        directory = "\(base)/muster-sshd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        hostKey = "\(directory)/host_ed25519"
        try Self.keygen(hostKey, type: "ed25519")
        clientKey = try Self.makeKey(in: directory, name: "client", type: "ed25519")
        authorizedKeys = "\(directory)/authorized_keys"
        try FileManager.default.copyItem(atPath: clientKey + ".pub", toPath: authorizedKeys)
        logPath = "\(directory)/sshd.log"
        knownHosts = "\(directory)/known_hosts"

        var started: (Child, Int)?
        var lastLog = ""
        for _ in 0..<5 where started == nil {
            let port = try Self.freePort()
            let config = "\(directory)/sshd_config"
            try """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(hostKey)
                PidFile none
                AuthorizedKeysFile \(authorizedKeys)
                StrictModes no
                UsePAM no
                PermitRootLogin prohibit-password
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                AllowTcpForwarding yes
                Subsystem sftp internal-sftp
                MaxStartups 100:30:200
                MaxSessions 50
                LogLevel VERBOSE
                \(extraConfig)

                """.write(toFile: config, atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let process = try Child([Self.sshdPath, "-D", "-e", "-f", config], output: logPath)
            // Bounded wait for "Server listening on 127.0.0.1 port N".
            for _ in 0..<100 {
                lastLog = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                if lastLog.contains("Server listening") || !process.isRunning { break }
                usleep(100_000)
            }
            if process.isRunning && lastLog.contains("Server listening") {
                started = (process, port)
            } else {
                process.stop()
            }
        }
        guard let (process, port) = started else {
            throw FixtureError(description: "sshd did not start; its log:\n\(lastLog)")
        }
        self.process = process
        self.port = port
        let hostPublic = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        try "[127.0.0.1]:\(port) \(hostPublic)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
    }

    /// Starts an sshd off the cooperative pool.
    static func start(extraConfig: String = "") async throws -> SSHDFixture {
        try await offPool { try SSHDFixture(extraConfig: extraConfig) }
    }

    deinit { stop() }

    func stop() { process.stop() }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// A target for this server: root, the authorized client key, no agent, the right known_hosts.
    func target(name: String = "test", identity: String? = nil, knownHosts: String? = nil,
                acceptNew: Bool = false) -> SSHTarget {
        SSHTarget(name: name, address: "127.0.0.1", port: port, user: "root",
                  identityFile: identity ?? clientKey, agentSocket: nil,
                  knownHostsFile: knownHosts ?? self.knownHosts, acceptNewHostKeys: acceptNew,
                  connectTimeout: 10, commandTimeout: 60)
    }

    func connect(_ target: SSHTarget? = nil) async throws -> SSHSession {
        try await SSHSession.connect(target ?? self.target())
    }

    /// Appends a public key file to authorized_keys.
    func authorize(_ publicKeyPath: String) throws {
        let key = try String(contentsOfFile: publicKeyPath, encoding: .utf8)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: authorizedKeys))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(key.utf8))
    }

    /// Makes a key pair in `directory`; returns the private key's path.
    static func makeKey(in directory: String, name: String, type: String, passphrase: String = "") throws -> String {
        let path = "\(directory)/\(name)"
        try keygen(path, type: type, passphrase: passphrase)
        return path
    }

    func makeKey(_ name: String, type: String = "ed25519", passphrase: String = "") throws -> String {
        try Self.makeKey(in: directory, name: name, type: type, passphrase: passphrase)
    }

    private static func keygen(_ path: String, type: String, passphrase: String = "") throws {
        var arguments = ["ssh-keygen", "-q", "-t", type, "-N", passphrase, "-C", "muster-test", "-f", path]
        if type == "rsa" { arguments += ["-b", "2048"] }
        try Child.run(arguments)
    }

    /// "SHA256:..." of a public key file, from ssh-keygen itself.
    static func fingerprint(ofPublicKey path: String) throws -> String {
        let text = try Child.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path]).output
        let fields = text.split(separator: " ")
        guard fields.count >= 2 else { throw FixtureError(description: "ssh-keygen -l: \(text)") }
        return String(fields[1])
    }

    /// A port nothing listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard rc == 0 else { throw FixtureError(description: "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Minimal blocking TCP client for loopback tests.
enum LoopbackClient {
    /// Connects to 127.0.0.1:port, sends `request`, reads until EOF (at most `timeout` seconds).
    static func exchange(port: Int, request: String, timeout: Int = 10) throws -> Data {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw FixtureError(description: "connect to \(port): errno \(errno)") }
        let bytes = Array(request.utf8)
        guard send(fd, bytes, bytes.count, 0) == bytes.count else {
            throw FixtureError(description: "short send")
        }
        var result = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { result.append(contentsOf: buffer[0..<n]); continue }
            if n == 0 { return result }
            throw FixtureError(description: "recv failed (errno \(errno)) after \(result.count) bytes")
        }
    }

    /// Waits (bounded) until something accepts connections on 127.0.0.1:port.
    static func waitListening(port: Int, seconds: Double = 10) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if rc == 0 { return true }
            usleep(100_000)
        }
        return false
    }
}
