import Foundation
import MusterBasics
@testable import MusterEtcd
#if canImport(Glibc)
import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// Certificates for a TLS test cluster: each member's server and peer pair, one CA, and the
/// client certificate muster (and etcdctl) present.
struct LocalTLS {
    struct Member { var certPath, keyPath, peerCertPath, peerKeyPath: String }
    var caPath: String
    var members: [String: Member]
    var client: EtcdTLS
}

/// A real etcd cluster on 127.0.0.1 with random high ports and temporary data dirs, for tests.
/// With `tls`, both ports speak https and require client certificates.
/// Every process it starts is stopped by `stopAll()` (also called from `deinit`).
final class LocalEtcdCluster: @unchecked Sendable {
    static let etcdPath = "/usr/bin/etcd"
    static let etcdctlPath = "/usr/bin/etcdctl"

    struct Node {
        var name: String
        var peerPort: Int
        var clientPort: Int
        var dataDir: String
        var logPath: String
        var scheme = "http"
        var peerURL: String { "\(scheme)://127.0.0.1:\(peerPort)" }
        var clientURL: String { "\(scheme)://127.0.0.1:\(clientPort)" }
    }

    let token: String
    let tls: LocalTLS?
    /// The TLS settings muster's clients use for this cluster (nil: plain http).
    var clientTLS: EtcdTLS? { tls?.client }
    let root: String
    private(set) var nodes: [Node] = []
    private var processes: [String: Process] = [:]
    private let lock = NSLock()

    /// Fails (never skips) when the etcd binaries are missing.
    static func requireBinaries() throws {
        for path in [etcdPath, etcdctlPath] where !FileManager.default.isExecutableFile(atPath: path) {
            throw HarnessError(description: """
                \(path) is missing: these tests need a real etcd 3.4+ (Debian: apt-get install \
                etcd-server etcd-client); they fail rather than skip
                """)
        }
    }

    init(names: [String] = ["m1", "m2", "m3"], tls: LocalTLS? = nil) throws {
        try LocalEtcdCluster.requireBinaries()
        self.tls = tls
        token = "muster-test-" + UUID().uuidString.prefix(8).lowercased()
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("muster-etcd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let ports = try LocalEtcdCluster.freePorts(names.count * 2)
        for (index, name) in names.enumerated() {
            nodes.append(Node(name: name, peerPort: ports[2 * index], clientPort: ports[2 * index + 1],
                              dataDir: "\(root)/\(name).etcd", logPath: "\(root)/\(name).log",
                              scheme: tls == nil ? "http" : "https"))
        }
    }

    deinit { stopAll(); try? FileManager.default.removeItem(atPath: root) }

    var initialCluster: String { nodes.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",") }
    var endpoints: String { nodes.map(\.clientURL).joined(separator: ",") }
    func node(_ name: String) -> Node { nodes.first { $0.name == name }! }

    func start() throws {
        for node in nodes { try start(node) }
    }

    private func start(_ node: Node) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: LocalEtcdCluster.etcdPath)
        process.arguments = [
            "--name", node.name, "--data-dir", node.dataDir,
            "--listen-peer-urls", node.peerURL, "--initial-advertise-peer-urls", node.peerURL,
            "--listen-client-urls", node.clientURL, "--advertise-client-urls", node.clientURL,
            "--initial-cluster", initialCluster, "--initial-cluster-token", token,
            "--initial-cluster-state", "new", "--enable-v2",
        ]
        if let tls {
            guard let member = tls.members[node.name] else {
                throw HarnessError(description: "no certificates for \(node.name)")
            }
            process.arguments! += [
                "--cert-file", member.certPath, "--key-file", member.keyPath,
                "--trusted-ca-file", tls.caPath, "--client-cert-auth",
                "--peer-cert-file", member.peerCertPath, "--peer-key-file", member.peerKeyPath,
                "--peer-trusted-ca-file", tls.caPath, "--peer-client-cert-auth",
            ]
        }
        _ = FileManager.default.createFile(atPath: node.logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: node.logPath))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { processes[node.name] = process }
    }

    /// SIGTERM, then SIGKILL after 10 s; waits (bounded) for the exit.
    func stop(_ name: String) {
        guard let process = lock.withLock({ processes.removeValue(forKey: name) }) else { return }
        let pid = process.processIdentifier
        guard LocalEtcdCluster.alive(process) else { return }
        kill(pid, SIGTERM)
        if LocalEtcdCluster.waitGone(process, seconds: 10) { return }
        kill(pid, SIGKILL)
        _ = LocalEtcdCluster.waitGone(process, seconds: 5)
    }

    /// Running, as far as the kernel says: a zombie (exited, not yet reaped by Foundation) counts
    /// as gone, so a slow or absent reaper can never hang the tests.
    static func alive(_ process: Process) -> Bool {
        guard process.isRunning else { return false }
        let pid = process.processIdentifier
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    static func waitGone(_ process: Process, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while alive(process) {
            if Date() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    func stopAll() {
        for name in lock.withLock({ Array(processes.keys) }) { stop(name) }
    }

    /// Polls `/health` on every member until all say true, at most `timeout` seconds.
    func waitHealthy(timeout: TimeInterval = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            var healthy = 0
            for node in nodes {
                do {
                    let health = try await EtcdClient(baseURL: node.clientURL, timeout: 2, tls: clientTLS).health()
                    if health.healthy { healthy += 1 } else { last = "\(node.name): \(health.reason)" }
                } catch {
                    last = "\(node.name): \(error)"
                }
            }
            if healthy == nodes.count { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError(description: "cluster not healthy after \(Int(timeout)) s (\(last)); logs:\n" + logTails())
    }

    func logTails(lines: Int = 15) -> String {
        nodes.map { node in
            let text = (try? String(contentsOfFile: node.logPath, encoding: .utf8)) ?? ""
            return "== \(node.name)\n" + text.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    @discardableResult
    func etcdctl(_ arguments: [String], endpoints: String? = nil) throws -> ProcessResult {
        var credentials: [String] = []
        if let client = clientTLS {
            credentials = ["--cacert", client.caPath, "--cert", client.certPath, "--key", client.keyPath]
        }
        return try LocalProcess.check([LocalEtcdCluster.etcdctlPath, "--endpoints=\(endpoints ?? self.endpoints)",
                                       "--command-timeout=10s"] + credentials + arguments,
                               environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    /// The expectation muster's planner would produce for this cluster.
    func expectation() -> ClusterExpectation {
        let members = nodes.map { node in
            ExpectedMember(name: node.name,
                           memberID: EtcdIDs.memberID(peerURLs: [node.peerURL], token: token),
                           peerURLs: [node.peerURL], clientURLs: [node.clientURL], endpoint: node.clientURL)
        }
        return ClusterExpectation(clusterName: "test", clusterID: EtcdIDs.clusterID(memberIDs: members.map(\.memberID)),
                                  members: members)
    }

    /// Distinct ports in 20000..<60000 that 127.0.0.1 can bind right now.
    static func freePorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        var attempts = 0
        while ports.count < count {
            attempts += 1
            if attempts > 1000 { throw HarnessError(description: "no free ports found") }
            let port = Int.random(in: 20000..<60000)
            if !ports.contains(port) && canBind(port) { ports.append(port) }
        }
        return ports
    }

    static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
