import Foundation
import MusterBasics
@testable import MusterEtcd
import MusterTestSupport

/// Certificates for a TLS test cluster: each member's server and peer pair, one CA, and the
/// client certificate muster (and etcdctl) present.
struct LocalTLS {
    struct Member { var certPath, keyPath, peerCertPath, peerKeyPath: String }
    var caPath: String
    /// The CA the peer ports trust (muster's peer CA), `caPath` when nil.
    var peerCAPath: String? = nil
    var members: [String: Member]
    var client: EtcdTLS
}

/// A real etcd cluster on 127.0.0.1 with random high ports and temporary data dirs, for tests.
/// With `tls`, both ports speak https and require client certificates.
/// Every process it starts is stopped by `stopAll()` (also called from `deinit`).
final class LocalEtcdCluster: @unchecked Sendable {
    static let etcdPath = LoopbackEtcd.debianBinary
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
    private var processes: [String: LoopbackEtcd] = [:]
    private let lock = NSLock()

    /// Fails (never skips) when the etcd binaries are missing.
    static func requireBinaries() throws {
        for path in [etcdPath, etcdctlPath] {
            try LoopbackEtcd.requireBinary(path, install: "3.4+; Debian: apt-get install etcd-server etcd-client")
        }
    }

    init(names: [String] = ["m1", "m2", "m3"], tls: LocalTLS? = nil) throws {
        try LocalEtcdCluster.requireBinaries()
        self.tls = tls
        token = "muster-test-" + UUID().uuidString.prefix(8).lowercased()
        root = try TemporaryDirectory.create(prefix: "muster-etcd")
        let ports = try FreePorts.pick(names.count * 2)
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
        var memberTLS: EtcdMemberTLS?
        if let tls {
            guard let member = tls.members[node.name] else {
                throw HarnessError(description: "no certificates for \(node.name)")
            }
            memberTLS = EtcdMemberTLS(caPath: tls.caPath, certPath: member.certPath, keyPath: member.keyPath,
                                      peerCertPath: member.peerCertPath, peerKeyPath: member.peerKeyPath,
                                      peerCAPath: tls.peerCAPath)
        }
        let member = try LoopbackEtcd(binary: LocalEtcdCluster.etcdPath, name: node.name, root: root,
                                      ports: (client: node.clientPort, peer: node.peerPort), tls: memberTLS,
                                      extra: ["--initial-cluster", initialCluster, "--initial-cluster-token", token,
                                              "--initial-cluster-state", "new"])
        lock.withLock { processes[node.name] = member }
    }

    /// SIGTERM, then SIGKILL after 10 s; waits (bounded) for the exit.
    func stop(_ name: String) {
        lock.withLock { processes.removeValue(forKey: name) }?.stop()
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
}
