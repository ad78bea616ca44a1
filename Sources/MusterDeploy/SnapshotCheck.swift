import Foundation
import MusterBasics
import MusterEtcd
import MusterWorkspace

/// `muster snapshot check`: a restore drill on the controller. The snapshot (a file, or an
/// `s3://` object downloaded and checked against its sha256) is restored with the cluster's own
/// restore tool (etcdctl 3.4, etcdutl 3.5+) into a scratch data dir, served by a one-member etcd
/// of the cluster's version (the inventory's member binary) on loopback ports, asked for its
/// health, its key count and its revision (which must equal the file's, and the record's when the
/// file is recorded), then stopped and the scratch dir removed. No host is contacted.
public struct SnapshotCheck: Sendable {
    public var builder: PlanBuilder
    public var progress: Progress
    public var snapshot: String

    public init(builder: PlanBuilder, progress: Progress, snapshot: String) {
        self.builder = builder
        self.progress = progress
        self.snapshot = snapshot
    }

    public struct Outcome: Sendable {
        public var cluster: String
        public var file: String
        public var sha256: String
        public var fileRevision: Int64
        /// The cluster record's revision for this file, nil when the record does not hold it.
        public var recordedRevision: Int64?
        /// What the restored member answered, nil where it did not.
        public var servedRevision: Int64?
        public var keys: Int64?
        public var etcdVersion: String
        /// Why the drill failed; empty when it passed.
        public var problems: [String]
        public var seconds: Double
        public var ok: Bool { problems.isEmpty }
    }

    public func run() async throws -> Outcome {
        let started = ContinuousClock.now
        let (workspace, cluster) = try await builder.loadSoleCluster()
        defer { workspace.state.unlock() }
        let stateDirectory = workspace.state.directory
        let file = try await ObjectStoreDownload.localPath(of: snapshot, stateDirectory: stateDirectory, cluster: cluster.name, progress: progress)
        let (version, name) = (cluster.memberVersion, cluster.name)
        let facts = try await offPool { try Restore.check(file, memberVersion: version, cluster: name, stateDirectory: stateDirectory) }
        let recorded = try workspace.state.clusterRecord(cluster.name)?.snapshots.first { $0.file == file || $0.sha256 == facts.fileSHA256 }
        let tool = try await RestoreTool.locate(workspace, cluster: cluster.name, version: cluster.memberVersion)
        let binary = workspace.inventory.member.binary
        let scratch = NSTemporaryDirectory() + "/muster-check-\(StateIdentity.newToken())"
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw MusterError(.host, cluster: cluster.name, step: "check", "cannot create \(scratch): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var outcome = Outcome(cluster: cluster.name, file: file, sha256: facts.fileSHA256, fileRevision: facts.revision,
                              recordedRevision: recorded?.revision, etcdVersion: cluster.memberVersion, problems: [], seconds: 0)
        if let recorded, recorded.revision != facts.revision {
            outcome.problems.append("the cluster record says revision \(recorded.revision) for this snapshot, the file holds \(facts.revision)")
        }
        let (client, peer) = try Self.loopbackPorts()
        let peerURL = "http://127.0.0.1:\(peer)", clientURL = "http://127.0.0.1:\(client)"
        let data = scratch + "/data"
        progress.note("restoring \(file) with \((tool.shipped.localPath as NSString).lastPathComponent) into \(data)")
        let restore = try await LocalProcess.runOffPool(
            [tool.shipped.localPath, "snapshot", "restore", file, "--data-dir", data, "--name", "check",
             "--initial-cluster", "check=\(peerURL)", "--initial-advertise-peer-urls", peerURL],
            environment: ProcessInfo.processInfo.environment.merging(["ETCDCTL_API": "3"]) { $1 }, timeout: 600)
        guard restore.succeeded else {
            outcome.problems.append("\((tool.shipped.localPath as NSString).lastPathComponent) snapshot restore failed: \(restore.stderrText.suffix(600))")
            outcome.seconds = Self.seconds(since: started)
            return outcome
        }
        progress.note("serving it with \(binary) on \(clientURL)")
        let member = Process()
        member.executableURL = URL(fileURLWithPath: binary)
        member.arguments = ["--name", "check", "--data-dir", data, "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "check=\(peerURL)"]
        let logPath = scratch + "/etcd.log"
        FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600])
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        member.standardOutput = log
        member.standardError = log
        member.standardInput = FileHandle.nullDevice
        do { try member.run() } catch {
            throw MusterError(.host, cluster: cluster.name, step: "check", "cannot start \(binary): \(error)")
        }
        let etcd = EtcdClient(baseURL: clientURL, timeout: 5)
        let deadline = Deadline(seconds: 60)
        var healthy = false, reason = "no answer"
        while true {
            if !member.isRunning { reason = "etcd exited (\(member.terminationStatus))"; break }
            if let health = try? await etcd.health() {
                healthy = health.healthy
                reason = health.reason
            }
            if healthy { break }
            guard try await deadline.sleep(.milliseconds(100)) else { break }
        }
        if healthy {
            do {
                let counted = try await etcd.countKeys()
                outcome.keys = counted.count
                outcome.servedRevision = counted.revision
                if counted.revision != facts.revision {
                    outcome.problems.append("the restored member serves revision \(counted.revision), the file holds \(facts.revision)")
                }
            } catch {
                outcome.problems.append("the restored member did not answer a range: \(error)")
            }
        } else {
            let tail = (try? String(contentsOfFile: logPath, encoding: .utf8)).map { String($0.suffix(600)) } ?? ""
            outcome.problems.append("the restored member was not healthy within \(deadline.text) (\(reason)): \(tail)")
        }
        await Self.stop(member)
        try? log.close()
        outcome.seconds = Self.seconds(since: started)
        return outcome
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Two free ports on 127.0.0.1, as the kernel hands them out (bound to port 0, then closed):
    /// nothing else on the controller is asked, and a port taken in between fails the start,
    /// which the drill then reports.
    static func loopbackPorts() throws -> (Int, Int) {
        var sockets: [Int32] = [], ports: [Int] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<2 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw MusterError(.host, step: "check", "cannot open a socket: \(String(cString: strerror(errno)))") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound else { throw MusterError(.host, step: "check", "cannot bind a loopback port: \(String(cString: strerror(errno)))") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return (ports[0], ports[1])
    }

    /// SIGTERM, then SIGKILL if it is still there after 10 s; waits (bounded) until it is gone.
    static func stop(_ process: Process) async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let polite = Deadline(seconds: 10)
        while process.isRunning, (try? await polite.sleep(.milliseconds(50))) == true {}
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            let hard = Deadline(seconds: 5)
            while process.isRunning, (try? await hard.sleep(.milliseconds(50))) == true {}
        }
    }
}
