import Foundation

/// The certificate files one TLS etcd member presents and trusts on each of its ports.
public struct EtcdMemberTLS: Sendable {
    public var caPath: String
    public var certPath: String
    public var keyPath: String
    public var peerCertPath: String
    public var peerKeyPath: String
    /// The CA the peer port trusts (muster's peer CA), `caPath` unless given.
    public var peerCAPath: String

    public init(caPath: String, certPath: String, keyPath: String, peerCertPath: String, peerKeyPath: String,
                peerCAPath: String? = nil) {
        self.caPath = caPath
        self.peerCAPath = peerCAPath ?? caPath
        self.certPath = certPath
        self.keyPath = keyPath
        self.peerCertPath = peerCertPath
        self.peerKeyPath = peerKeyPath
    }

    /// https on both ports, and a client certificate from the CA required on both.
    var flags: [String] {
        ["--cert-file", certPath, "--key-file", keyPath,
         "--trusted-ca-file", caPath, "--client-cert-auth",
         "--peer-cert-file", peerCertPath, "--peer-key-file", peerKeyPath,
         "--peer-trusted-ca-file", peerCAPath, "--peer-client-cert-auth"]
    }
}

/// One real etcd member on 127.0.0.1, its data dir (`ROOT/NAME.etcd`) and log (`ROOT/NAME.log`)
/// under a directory the caller owns. It only starts and stops the process: how a test decides
/// the member is healthy (HTTP `/health`, muster's EtcdClient, etcdctl over TLS) differs between
/// suites and stays with them. `stop()` (also run from `deinit`) is bounded; see
/// `ChildProcesses.stop`.
public final class LoopbackEtcd: @unchecked Sendable {
    /// Debian's etcd-server package (etcd 3.4).
    public static let debianBinary = "/usr/bin/etcd"

    public let name: String
    public let clientPort: Int
    public let peerPort: Int
    public let scheme: String
    public let dataDir: String
    public let logPath: String
    private let process: Process

    public var clientURL: String { "\(scheme)://127.0.0.1:\(clientPort)" }
    public var peerURL: String { "\(scheme)://127.0.0.1:\(peerPort)" }

    /// Fails with a message that says what to install when `path` is not an executable: these
    /// tests need a real etcd and fail rather than skip without one.
    public static func requireBinary(_ path: String, install hint: String = "Debian: apt-get install etcd-server; etcd 3.5: scripts/setup.sh") throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError(description: "\(path) is missing: these tests need a real etcd (\(hint)); they fail rather than skip")
        }
    }

    /// Starts etcd. Without `ports`, two free ones on 127.0.0.1. With `tls`, both ports speak
    /// https and require client certificates. `enableV2` serves the v2 keys API (the discovery
    /// protocol needs it). `extra` adds flags, typically how the member bootstraps (a discovery
    /// URL, or `--initial-cluster` for several members); without any, it forms a cluster of one.
    public init(binary: String = LoopbackEtcd.debianBinary, name: String, root: String,
                ports: (client: Int, peer: Int)? = nil, tls: EtcdMemberTLS? = nil,
                enableV2: Bool = true, extra: [String] = []) throws {
        try Self.requireBinary(binary)
        self.name = name
        let chosen = try ports ?? { let free = try FreePorts.pick(2); return (free[0], free[1]) }()
        clientPort = chosen.client
        peerPort = chosen.peer
        scheme = tls == nil ? "http" : "https"
        dataDir = "\(root)/\(name).etcd"
        logPath = "\(root)/\(name).log"
        let clientURL = "\(scheme)://127.0.0.1:\(clientPort)", peerURL = "\(scheme)://127.0.0.1:\(peerPort)"
        var arguments = [
            "--name", name, "--data-dir", dataDir,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
        ]
        if enableV2 { arguments.append("--enable-v2") }
        if let tls { arguments += tls.flags }
        if extra.isEmpty { arguments += ["--initial-cluster", "\(name)=\(peerURL)"] }
        process = try ChildProcesses.start(binary, arguments + extra, logPath: logPath)
    }

    deinit { stop() }

    public var pid: Int32 { process.processIdentifier }
    public var running: Bool { ChildProcesses.isAlive(process) }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The last `lines` lines of the log, for failure messages.
    public func logTail(lines: Int = 15) -> String {
        log.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// SIGTERM, SIGKILL after 10 s, bounded waits.
    public func stop() { ChildProcesses.stop(process) }

    /// True once the member has exited (or become a zombie), within `seconds`: for members
    /// expected to give up on their own (a full discovery token, say).
    public func waitExit(seconds: TimeInterval) -> Bool {
        ChildProcesses.waitGone(process, seconds: seconds)
    }
}
