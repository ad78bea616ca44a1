import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import MusterDiscovery
import MusterTestSupport

/// etcd 3.4 (Debian's) and 3.5 (unpacked by scripts/fetch-etcd-debian.sh during set-up).
enum EtcdBinaries {
    static let etcd34 = LoopbackEtcd.debianBinary
    static let etcd35 = ProcessInfo.processInfo.environment["MUSTER_ETCD35"] ?? "/var/cache/muster/etcd-3.5/usr/bin/etcd"

    static func require(_ path: String) throws {
        try LoopbackEtcd.requireBinary(path, install: "etcd-server for 3.4, scripts/setup.sh (fetch-etcd-debian.sh) for 3.5")
    }
}

extension LoopbackEtcd {
    /// Polls `/health` over plain http until etcd says true, at most `timeout` seconds.
    func waitHealthy(timeout: TimeInterval = 30) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let answer = try? await HTTPProbe.send("GET", clientURL + "/health", timeout: 2),
               answer.status == 200, answer.text.contains("true") { return }
            if !running { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError(description: "etcd \(name) not healthy within \(Int(timeout)) s; log:\n" + logTail())
    }
}

extension LoopbackEtcd {
    /// A single-member etcd that is healthy and really the one this test started. Many tests
    /// pick ports at the same moment: two etcds may pick the same one, the second fails to
    /// bind and exits, and its test would talk to the other's etcd until that test stops it.
    /// Each member gets a unique name, checked at `/v2/stats/self`; on a mismatch, new ports
    /// (at most `attempts` tries).
    static func startVerified(root: String, attempts: Int = 3) async throws -> LoopbackEtcd {
        var problem = "no attempt"
        for attempt in 0..<attempts {
            let name = "backing\(attempt)-\(UUID().uuidString.prefix(8).lowercased())"
            let etcd = try LoopbackEtcd(name: name, root: root)
            do {
                try await etcd.waitHealthy()
                let stats = try await HTTPProbe.send("GET", etcd.clientURL + "/v2/stats/self", timeout: 3)
                if stats.json?["name"] as? String == name && etcd.running { return etcd }
                problem = "port \(etcd.clientPort) answered by another etcd: \(stats.text.prefix(200))"
            } catch {
                problem = "\(error)"
            }
            etcd.stop()
        }
        throw HarnessError(description: "no etcd of this test's own after \(attempts) tries: \(problem)")
    }
}

/// The discovery service on 127.0.0.1 and a free port: in this process, or, when
/// `MUSTER_DISCOVERY_BINARY` names a `muster` executable, that binary as a child (`discovery
/// serve`; only `waitTimeout` of the options reaches it): how the regression tests were run
/// against the code before the hardening.
final class ServiceUnderTest: @unchecked Sendable {
    let server: DiscoveryServer!
    let port: Int
    private let task: Task<Void, Error>?
    private let child: Process?
    private let childLog: String?
    private let lines = LogLines()
    var url: String { "http://127.0.0.1:\(port)" }
    var logText: String {
        if let childLog { return (try? String(contentsOfFile: childLog, encoding: .utf8)) ?? "" }
        return lines.all.joined(separator: "\n")
    }

    static let externalBinary = ProcessInfo.processInfo.environment["MUSTER_DISCOVERY_BINARY"]

    init(etcdURL: String, configure: (inout DiscoveryServerOptions) -> Void = { _ in }) async throws {
        var options = DiscoveryServerOptions(host: "127.0.0.1", port: 0, etcdURL: etcdURL)
        configure(&options)
        if let binary = Self.externalBinary {
            let port = try FreePorts.pick(1)[0]
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("muster-disco-\(port).log").path
            child = try ChildProcesses.start(binary, ["discovery", "serve", "--listen", "127.0.0.1:\(port)", "--etcd", etcdURL,
                                                      "--wait-timeout", String(Int(max(options.waitTimeout, 1)))], logPath: log)
            childLog = log
            server = nil
            task = nil
            self.port = port
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if let answer = try? await HTTPProbe.send("GET", "http://127.0.0.1:\(port)/health", timeout: 1), answer.status == 200 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw HarnessError(description: "\(binary) not listening within 20 s")
        }
        child = nil
        childLog = nil
        let lines = self.lines
        let server = try DiscoveryServer(options: options) { lines.append($0) }
        self.server = server
        let listening = PortBox()
        let task = Task { try await server.run { port in listening.set(port) } }
        self.task = task
        let deadline = Date().addingTimeInterval(20)
        while listening.value == nil && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard let port = listening.value else {
            task.cancel()
            throw HarnessError(description: "discovery service not listening within 20 s: \(lines.all)")
        }
        self.port = port
    }

    /// Waits (bounded, 10 s) until `condition` holds of the in-process server; against an
    /// external binary (`MUSTER_DISCOVERY_BINARY`, which shows no counts) it waits a fixed 700 ms.
    func waitUntil(_ what: String, _ condition: (DiscoveryServer) -> Bool) async throws {
        guard let server else {
            try await Task.sleep(for: .milliseconds(700))
            return
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition(server) {
            guard ContinuousClock.now < deadline else { throw HarnessError(description: "not within 10 s: \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    deinit {
        task?.cancel()
        if let child { ChildProcesses.stop(child) }
    }

    /// Cancels the server and waits (bounded) for it to stop.
    func stop() async {
        if let child {
            ChildProcesses.stop(child)
            return
        }
        guard let task else { return }
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
        let (data, response) = try await Bounded.run(seconds: timeout + 2, what: url) {
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

/// Runs `body`, giving up after `seconds` (the work is cancelled and its late result dropped).
enum Bounded {
    static func run<T: Sendable>(seconds: TimeInterval, what: String,
                                 _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw HarnessError(description: "\(what): no answer within \(seconds) s")
            }
            return value
        }
    }
}
