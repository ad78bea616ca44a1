import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import MusterBasics
import MusterDeploy
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// `bootstrap: { discovery: { service: URL, size: 3 } }` against `muster discovery serve` run on
/// the controller, listening on the sandbox bridge's gateway address (backed by an etcd 3.4 on
/// 127.0.0.1): the members on the sandbox hosts bootstrap through it, on etcd 3.4 and 3.5.
/// Serialized, and wiped after: it shares the deploy sandbox with the other deploy suites.
@Suite(.serialized) struct ServiceDiscoveryTests {
    @Test(arguments: ["3.4", "3.5"])
    func threeMembersBootstrapThroughMusterDiscoveryServe(version: String) async throws {
        try await onSandbox {
            let binary = version == "3.4" ? "/usr/bin/etcd" : DeploySandbox.etcd35
            guard FileManager.default.isExecutableFile(atPath: binary) else {
                Issue.record("etcd \(version) missing at \(binary): run scripts/setup.sh (it fetches it)")
                return
            }
            let gateway = try DeploySandbox.acquire().gateway
            let service = try await DiscoveryServiceProcess.start(listen: gateway)
            var builder: PlanBuilder?
            do {
                // A cluster of its own name and ports, so it never meets another suite's `main`.
                builder = try DeploySandbox.inventory(.static, binary: binary) {
                    $0.replacingOccurrences(of: "  main:", with: "  svc:")
                        .replacingOccurrences(of: "    bootstrap: static", with: """
                                client_port: 22379
                                peer_port: 22380
                                bootstrap: { discovery: { service: \(service.url), size: 3 } }
                            """)
                }
                let outcome = try await DeploySandbox.up(builder!)
                #expect(outcome.reports.count == 1)
                #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")

                // `up` asked /new once; each member registered itself through the service.
                let log = service.log
                #expect(log.contains("GET /new?size=3 -> 200"), "\(log)")
                let token = try #require(try await service.tokens().first, "no token in the backing etcd")
                let tokenURL = service.url + "/" + token
                let listing = try await Probe.send("GET", tokenURL)
                #expect(listing.status == 200)
                #expect(listing.childNames.count == 3, "\(listing.text)")
                #expect(!listing.text.contains("_config"))
                #expect(log.components(separatedBy: "?prevExist=false -> 201").count - 1 == 3, "\(log)")

                // The token is spent. The same member registering again gets etcd's 412 (105: key
                // exists; etcd's client says "found duplicate id").
                let first = try #require(listing.childNames.first)
                let again = try await Probe.send("PUT", "\(tokenURL)/\(first)?prevExist=false", form: "value=again%3Dhttp%3A%2F%2F127.0.0.1%3A1")
                #expect(again.status == 412 && again.errorCode == 105, "\(again.status) \(again.text)")

                // A fourth member (on host1, other ports, the binary muster shipped) finds the token
                // full and exits (discovery-fallback: exit).
                let host1 = try DeploySandbox.host("host1").address
                let exe = try DeploySandbox.exec("host1", "readlink /proc/$(cat /run/etcd/svc.pid)/exe")
                let fourth = try DeploySandbox.exec("host1", """
                    dir=$(mktemp -d); timeout 60 \(exe) --name extra --data-dir $dir/extra.etcd \
                    --listen-peer-urls http://\(host1):12380 --initial-advertise-peer-urls http://\(host1):12380 \
                    --listen-client-urls http://\(host1):12379 --advertise-client-urls http://\(host1):12379 \
                    --discovery \(tokenURL) --discovery-fallback exit >$dir/log 2>&1; echo "exit $?"; tail -n 20 $dir/log; rm -rf $dir
                    """)
                #expect(!fourth.hasPrefix("exit 0") && !fourth.hasPrefix("exit 124"), "\(fourth)")
                #expect(fourth.contains("discovery cluster is full") || fourth.contains("discovery: cluster is full"), "\(fourth)")
                // etcd's client checks the listing before registering: a full token gets no fourth key.
                #expect(try await Probe.send("GET", tokenURL).childNames.count == 3)
            } catch {
                if let builder { try? await DeploySandbox.down(builder, wipe: true) }
                service.stop()
                throw error
            }
            if let builder { try await DeploySandbox.down(builder, wipe: true) }
            service.stop()
            #expect(!FileManager.default.fileExists(atPath: service.pidfile), "the pidfile is removed on SIGTERM")
            try? FileManager.default.removeItem(atPath: service.root)  // logs are kept only when something failed
        }
    }
}

/// `muster discovery serve` (the binary built beside this test bundle) plus its backing etcd
/// on 127.0.0.1, each stopped with SIGTERM, SIGKILL after 10 s, bounded waits.
final class DiscoveryServiceProcess: @unchecked Sendable {
    let root: String
    let url: String
    private let etcd: LoopbackEtcd
    private let service: Process
    var etcdURL: String { etcd.clientURL }
    /// The service writes its pid here and removes the file on SIGTERM.
    var pidfile: String { root + "/service.pid" }
    var log: String { (try? String(contentsOfFile: root + "/service.log", encoding: .utf8)) ?? "" }

    static func musterBinary() throws -> String {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["MUSTER_BIN"] { candidates.append(path) }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {  // .../debug/musterPackageTests.xctest[/Contents/MacOS]
            candidates.append(directory.appendingPathComponent("muster").path)
            directory = directory.deletingLastPathComponent()
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SandboxError("the muster binary was not found beside the tests (\(candidates)); set MUSTER_BIN")
        }
        return found
    }

    static func start(listen address: String) async throws -> DiscoveryServiceProcess {
        let muster = try musterBinary()
        let root = try TemporaryDirectory.create(prefix: "muster-disco-svc")
        let etcd = try LoopbackEtcd(name: "discovery-backend", root: root)
        let port = try FreePorts.pick(1, on: address)[0]
        let pidfile = root + "/service.pid"
        let service: Process
        do {
            service = try ChildProcesses.start(muster, ["discovery", "serve", "--listen", "\(address):\(port)",
                                                        "--base-url", "http://\(address):\(port)",
                                                        "--etcd", etcd.clientURL, "--pidfile", pidfile],
                                               logPath: root + "/service.log")
        } catch {
            etcd.stop()
            throw error
        }
        let started = DiscoveryServiceProcess(root: root, url: "http://\(address):\(port)", etcd: etcd, service: service)
        // Up when the pidfile names it and both it and its backend answer.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: pidfile, encoding: .utf8),
               Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == service.processIdentifier,
               (try? await Probe.send("GET", started.url + "/health", timeout: 2))?.status == 200,
               (try? await Probe.send("GET", started.etcdURL + "/health", timeout: 2))?.text.contains("true") == true {
                return started
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        started.stop()
        throw SandboxError("discovery service not up within 30 s:\n\(started.log)")
    }

    private init(root: String, url: String, etcd: LoopbackEtcd, service: Process) {
        self.root = root
        self.url = url
        self.etcd = etcd
        self.service = service
    }

    deinit { stop() }

    /// Tokens in the backing etcd's registry.
    func tokens() async throws -> [String] {
        try await Probe.send("GET", etcdURL + "/v2/keys/_etcd/registry").childNames
    }

    func stop() {
        ChildProcesses.stop(service)
        etcd.stop()
        try? FileManager.default.removeItem(atPath: etcd.dataDir)
    }
}

/// Plain HTTP for these tests (URLSession), only to 127.0.0.1 and the sandbox gateway.
enum Probe {
    struct Answer {
        var status: Int
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        var errorCode: Int? { json?["errorCode"] as? Int }
        var childNames: [String] {
            ((json?["node"] as? [String: Any])?["nodes"] as? [[String: Any]] ?? [])
                .compactMap { ($0["key"] as? String)?.split(separator: "/").last.map(String.init) }
        }
    }

    static func send(_ method: String, _ url: String, form: String? = nil, timeout: TimeInterval = 10) async throws -> Answer {
        guard let parsed = URL(string: url) else { throw SandboxError("bad URL \(url)") }
        var request = URLRequest(url: parsed)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let form {
            request.httpBody = Data(form.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw SandboxError("no HTTP answer from \(url)") }
        return Answer(status: http.statusCode, body: data)
    }
}
