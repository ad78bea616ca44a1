import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
@testable import MusterDiscovery

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// etcd 3.4 (Debian's) and 3.5 (unpacked by scripts/fetch-etcd35.sh during set-up).
enum EtcdBinaries {
    static let etcd34 = "/usr/bin/etcd"
    static let etcd35 = ProcessInfo.processInfo.environment["MUSTER_ETCD35"] ?? "/var/cache/muster/etcd-3.5/usr/bin/etcd"

    static func require(_ path: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError(description: "\(path) is missing: these tests need a real etcd (etcd-server for 3.4, scripts/fetch-etcd35.sh for 3.5); they fail rather than skip")
        }
    }
}

/// One etcd process on 127.0.0.1 with random ports and a temporary data dir. `stop()` (also
/// run from `deinit`) sends SIGTERM, then SIGKILL after 10 s, and waits (bounded) for the exit.
final class EtcdProcess: @unchecked Sendable {
    let name: String
    let clientPort: Int
    let peerPort: Int
    let dataDir: String
    let logPath: String
    private let process = Process()
    var clientURL: String { "http://127.0.0.1:\(clientPort)" }
    var peerURL: String { "http://127.0.0.1:\(peerPort)" }

    /// Starts etcd. `extra` adds flags (a discovery URL, say); without any, a lone member that
    /// serves the v2 keys API.
    init(binary: String = EtcdBinaries.etcd34, name: String = "backing", root: String,
         ports: (client: Int, peer: Int)? = nil, extra: [String] = []) throws {
        try EtcdBinaries.require(binary)
        self.name = name
        let chosen = try ports ?? { let free = try Loopback.freePorts(2); return (free[0], free[1]) }()
        clientPort = chosen.client
        peerPort = chosen.peer
        dataDir = "\(root)/\(name).etcd"
        logPath = "\(root)/\(name).log"
        process.executableURL = URL(fileURLWithPath: binary)
        var arguments = [
            "--name", name, "--data-dir", dataDir,
            "--listen-client-urls", "http://127.0.0.1:\(clientPort)", "--advertise-client-urls", "http://127.0.0.1:\(clientPort)",
            "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--enable-v2",
        ]
        if extra.isEmpty { arguments += ["--initial-cluster", "\(name)=http://127.0.0.1:\(peerPort)"] }
        process.arguments = arguments + extra
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { stop() }

    var pid: Int32 { process.processIdentifier }
    var running: Bool { Self.alive(pid) && process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func stop() {
        guard running else { return }
        kill(pid, SIGTERM)
        if waitExit(seconds: 10) { return }
        kill(pid, SIGKILL)
        _ = waitExit(seconds: 5)
    }

    /// True once the process has exited (or become a zombie), within `seconds`.
    func waitExit(seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while running {
            if Date() >= deadline { return false }
            usleep(50_000)
        }
        return true
    }

    /// Polls `/health` until etcd says true, at most `timeout` seconds.
    func waitHealthy(timeout: TimeInterval = 30) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let answer = try? await HTTPProbe.send("GET", clientURL + "/health", timeout: 2),
               answer.status == 200, answer.text.contains("true") { return }
            if !running { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError(description: "etcd \(name) not healthy within \(Int(timeout)) s; log:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n"))
    }

    static func alive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }
}

/// The discovery service, in this process, on 127.0.0.1 and a free port.
final class ServiceUnderTest: @unchecked Sendable {
    let server: DiscoveryServer
    let port: Int
    private let task: Task<Void, Error>
    private let lines = LogLines()
    var url: String { "http://127.0.0.1:\(port)" }
    var logText: String { lines.all.joined(separator: "\n") }

    init(etcdURL: String, configure: (inout DiscoveryServerOptions) -> Void = { _ in }) async throws {
        var options = DiscoveryServerOptions(host: "127.0.0.1", port: 0, etcdURL: etcdURL)
        configure(&options)
        let lines = self.lines
        let server = DiscoveryServer(options: options) { lines.append($0) }
        self.server = server
        let listening = PortBox()
        task = Task { try await server.run { port in listening.set(port) } }
        let deadline = Date().addingTimeInterval(20)
        while listening.value == nil && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard let port = listening.value else {
            task.cancel()
            throw HarnessError(description: "discovery service not listening within 20 s: \(lines.all)")
        }
        self.port = port
    }

    deinit { task.cancel() }

    /// Cancels the server and waits (bounded) for it to stop.
    func stop() async {
        task.cancel()
        let done = PortBox()
        let waiter = Task { _ = try? await task.value; done.set(1) }
        let deadline = Date().addingTimeInterval(15)
        while done.value == nil && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        waiter.cancel()
    }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int?
    func set(_ value: Int) { lock.withLock { stored = value } }
    var value: Int? { lock.withLock { stored } }
}

/// Plain HTTP for the tests (URLSession, bounded).
enum HTTPProbe {
    struct Answer {
        var status: Int
        var body: Data
        var headers: [String: String]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        var errorCode: Int? { json?["errorCode"] as? Int }
        /// The last path components of a listing's children.
        var childNames: [String] {
            ((json?["node"] as? [String: Any])?["nodes"] as? [[String: Any]] ?? [])
                .compactMap { ($0["key"] as? String)?.split(separator: "/").last.map(String.init) }
        }
        var value: String? { (json?["node"] as? [String: Any])?["value"] as? String }
    }

    static func send(_ method: String, _ url: String, form: String? = nil, body: Data? = nil,
                     timeout: TimeInterval = 10) async throws -> Answer {
        guard let parsed = URL(string: url) else { throw HarnessError(description: "bad URL \(url)") }
        var request = URLRequest(url: parsed)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let form {
            request.httpBody = Data(form.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let prepared = request
        let (data, response) = try await RegistryBackend.bounded(seconds: timeout + 2, url: url) {
            try await session.data(for: prepared)
        }
        guard let http = response as? HTTPURLResponse else { throw HarnessError(description: "no HTTP answer from \(url)") }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
        }
        return Answer(status: http.statusCode, body: data, headers: headers)
    }
}

enum Loopback {
    /// Distinct ports in 20000..<60000 that `address` can bind right now.
    static func freePorts(_ count: Int, address: String = "127.0.0.1") throws -> [Int] {
        var ports: [Int] = []
        var attempts = 0
        while ports.count < count {
            attempts += 1
            if attempts > 1000 { throw HarnessError(description: "no free ports found") }
            let port = Int.random(in: 20000..<60000)
            if !ports.contains(port) && canBind(port, address: address) { ports.append(port) }
        }
        return ports
    }

    static func canBind(_ port: Int, address: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr.s_addr = inet_addr(address)
        return withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-disco-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
