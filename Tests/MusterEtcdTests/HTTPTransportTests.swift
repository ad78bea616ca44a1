import Foundation
import MusterBasics
import NIOCore
import NIOHTTP1
import Testing
@testable import MusterEtcd
import MusterTestSupport

/// muster's own HTTP/1.1 client (`HTTPTransport`) against a loopback server that misbehaves on
/// purpose, one way per path: its bounds, caps, framing, and that cancelling closes the connection.
@Suite struct HTTPTransportTests {
    /// Paths (GET): `/echo` (the request's head as the body), any other (never answers),
    /// `/stall-body` (a head promising 100 bytes, 10 of them, then silence), `/cut` (10 of 100
    /// bytes, then close), `/big` (17 MiB), `/steady` (8 MiB as fast as it is read), `/chunked` (200 chunks of 1 KiB), `/hold` (never
    /// answers; writes `open PATH` then `closed PATH` to the file argument when the client goes away).
    static let server = """
        import base64, hashlib, http.server, sys, time
        port, record = int(sys.argv[1]), sys.argv[2]
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            def do_GET(self):
                if self.path.startswith('/echo'):
                    body = (self.requestline + '\\r\\n' + str(self.headers)).encode()
                    self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
                    self.wfile.write(body)
                elif self.path in ('/stall-body', '/cut'):
                    self.send_response(200); self.send_header('Content-Length', '100'); self.end_headers()
                    self.wfile.write(b'x' * 10); self.wfile.flush()
                    if self.path == '/stall-body':
                        while self.connection.recv(1): pass
                    self.close_connection = True
                elif self.path == '/big':
                    size = 17 << 20
                    self.send_response(200); self.send_header('Content-Length', str(size)); self.end_headers()
                    try:
                        for _ in range(size >> 16): self.wfile.write(b'y' * 65536)
                    except OSError: pass
                elif self.path == '/steady':
                    size = 8 << 20
                    self.send_response(200); self.send_header('Content-Length', str(size)); self.end_headers()
                    try:
                        for _ in range(size >> 16): self.wfile.write(b's' * 65536)
                    except OSError: pass
                elif self.path == '/chunked':
                    self.send_response(200); self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()
                    for _ in range(200):
                        self.wfile.write(b'400\\r\\n' + b'z' * 1024 + b'\\r\\n'); self.wfile.flush()
                    self.wfile.write(b'0\\r\\n\\r\\n')
                else:
                    path = self.path.split('?')[0]
                    if path.startswith('/hold'):
                        with open(record, 'a') as f: f.write('open ' + path + '\\n')
                    while self.connection.recv(1): pass
                    if path.startswith('/hold'):
                        with open(record, 'a') as f: f.write('closed ' + path + '\\n')
            def do_POST(self):
                # `/endless-line/...`: a 200 whose body is one line that never ends (64 MiB,
                # then the connection closes), where etcd sends its snapshot stream.
                self.send_response(200); self.send_header('Content-Type', 'application/json'); self.end_headers()
                if self.path.startswith('/endless-line'):
                    try:
                        self.wfile.write(b'{"result":{"blob":"')
                        for _ in range(1024): self.wfile.write(b'A' * 65536)
                    except OSError: pass
                    self.close_connection = True
                # `/no-final-newline/...`: a whole snapshot stream of 51200 bytes whose last line
                # (the digest) has no newline before the connection closes.
                elif self.path.startswith('/no-final-newline'):
                    db = bytes(range(256)) * 200
                    line = lambda blob, rest: ('{"result":{"blob":"%s"%s}}' % (base64.b64encode(blob).decode(), ',"remaining_bytes":"%d"' % rest if rest else '')).encode()
                    self.wfile.write(line(db[:32768], len(db) - 32768) + b'\\n' + line(db[32768:], 0) + b'\\n' + line(hashlib.sha256(db).digest(), 0))
                    self.close_connection = True
            def log_message(self, *args): pass
        http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
        """

    static func transportError(_ body: () async throws -> Void) async -> EtcdClientError? {
        do {
            try await body()
            return nil
        } catch let error as EtcdClientError {
            return error
        } catch {
            Issue.record("not an EtcdClientError: \(error)")
            return nil
        }
    }

    @Test func headersFramingAndCaps() async throws {
        let server = try TransportTestServer()
        let http = HTTP(timeout: 5)
        let echo = try await http.send("GET", server.origin + "/echo?a=%2Fb")
        #expect(echo.status == 200)
        #expect(echo.text.hasPrefix("GET /echo?a=%2Fb HTTP/1.1\r\n"), "\(echo.text)")
        // (Python prints the headers it parsed one a line.)
        #expect(echo.text.contains("\nHost: \(server.origin.dropFirst("http://".count))\n"), "\(echo.text)")
        #expect(echo.text.contains("\nConnection: close\n"), "\(echo.text)")

        let chunked = try await http.send("GET", server.origin + "/chunked")
        #expect(chunked.body.count == 200 * 1024 && chunked.body.allSatisfy { $0 == UInt8(ascii: "z") })

        let big = await Self.transportError { _ = try await http.send("GET", server.origin + "/big") }
        #expect(big?.kind == .transport && big?.message == "answer larger than 16 MiB", "\(String(describing: big))")

        let cut = await Self.transportError { _ = try await http.send("GET", server.origin + "/cut") }
        #expect(cut?.kind == .transport && cut?.message == "connection lost", "\(String(describing: cut))")
    }

    @Test func boundsRunOut() async throws {
        let server = try TransportTestServer()
        let head = await Self.transportError { _ = try await HTTP(timeout: 0.5).send("GET", server.origin + "/stall-head") }
        #expect(head?.kind == .transport && head?.message == "timed out", "\(String(describing: head))")

        let v2 = try V2KeysClient(baseURL: server.origin, timeout: 0.5)
        let body = await Self.transportError { _ = try await v2.send("GET", "/x", timeout: 0.5) }
        #expect(body?.message.hasPrefix("timed out") == true, "\(String(describing: body))")
        await v2.shutdown()

        // A body that stalls after its head: the read timeout (30 s in muster, short here).
        let limits = HTTPTransport.Limits(connectTimeout: .seconds(5), deadline: nil, deadlineCoversBody: false,
                                          readTimeout: .milliseconds(300))
        do {
            _ = try await HTTPTransport.exchange(.init(method: .GET, url: server.origin + "/stall-body"), tls: nil,
                                                 limits: limits) { _, body in try await body.collect(upTo: 1 << 20).readableBytes }
            Issue.record("a stalled body ended")
        } catch let error as HTTPTransportError {
            #expect(error == .readTimeout)
        }

        // A reader that holds back (a snapshot written to a slow disk) for longer than the read
        // timeout: the connection stops reading, which is not the server going silent.
        var received = 0
        _ = try await HTTPTransport.exchange(.init(method: .GET, url: server.origin + "/steady"), tls: nil, limits: limits) { _, body in
            while let chunk = try await body.next() {
                if received == 0 { try await Task.sleep(for: .milliseconds(900)) }  // the slow disk: 3 read timeouts
                received += chunk.readableBytes
            }
            return received
        }
        #expect(received == 8 << 20)

        // Nothing listens: refused at once, said so.
        let port = try FreePorts.pick(1)[0]
        let refused = await Self.transportError { _ = try await HTTP(timeout: 5).send("GET", "http://127.0.0.1:\(port)/") }
        #expect(refused?.kind == .transport && refused?.message == "connection refused", "\(String(describing: refused))")
    }

    /// The snapshot stream is split into lines as it comes: a server that never sends a newline
    /// is refused once a line passes the bound, not buffered whole (it used to be, up to the
    /// transfer's one-hour bound).
    @Test func aSnapshotStreamLineWithoutEndIsRefusedAtTheBound() async throws {
        let server = try TransportTestServer()
        let path = server.directory.path + "/snapshot.db"
        do {
            _ = try await EtcdClient(baseURL: server.origin + "/endless-line", timeout: 5).saveSnapshotThroughGateway(to: path, within: 60)
            Issue.record("a stream without newlines was saved")
        } catch let error as SnapshotError {
            #expect(error.description.contains("a line longer than 1048576 bytes (no newline)"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: path), "the partial file stayed")
    }

    /// The gateway's last line may end without a newline: its digest is still checked and written.
    @Test func aSnapshotStreamWhoseLastLineHasNoNewlineIsSavedWhole() async throws {
        let server = try TransportTestServer()
        let path = server.directory.path + "/whole.db"
        let download = try await EtcdClient(baseURL: server.origin + "/no-final-newline", timeout: 5).saveSnapshotThroughGateway(to: path, within: 60)
        let database = (0..<51200).map { UInt8($0 % 256) }
        let saved = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(saved == Data(database + Digest.sha256(database)), "\(saved.count) bytes")
        #expect(download.bytes == Int64(saved.count))
        // Hashed once, as it streamed: the file's digest and the database's.
        #expect(download.digests == SnapshotDigests(file: Digest.sha256Hex(saved), database: Digest.hex(Digest.sha256(database))))
    }

    /// A connect that hangs (its SYN dropped) ends when the task asking is cancelled, not at its
    /// connect timeout (10 minutes here: the time limit catches a connect that runs on).
    @Test(.timeLimit(.minutes(1))) func cancellingAConnectThatHangsEndsIt() async throws {
        // A loopback listener that never accepts, its queue (backlog 0) filled by one connection:
        // the kernel drops every further SYN, so the next connect stays in SYN_SENT.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener); close(filler) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(listener, raw, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, raw, &length) == 0
                    && connect(filler, raw, length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let limits = HTTPTransport.Limits(connectTimeout: .minutes(10), deadline: nil, deadlineCoversBody: false, readTimeout: nil)
        let connecting = Task {
            try await HTTPTransport.exchange(.init(method: .GET, url: "http://127.0.0.1:\(port)/"), tls: nil, limits: limits) { _, _ in 0 }
        }
        // Cancelled only once the connect is under way: a socket to the port in SYN_SENT (02).
        let remote = String(format: ":%04X 02 ", port)
        var syn = false
        for _ in 0..<200 where !syn {
            // Read to its end (a proc file has no size for a one-read reader to trust).
            let table = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/net/tcp")).readToEnd()) ?? nil
            syn = String(decoding: table ?? Data(), as: UTF8.self).contains(remote)
            if !syn { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(syn, "the connect never started")
        connecting.cancel()
        do {
            _ = try await connecting.value
            Issue.record("a connect to a listener that never answers succeeded")
        } catch let error as HTTPTransportError {
            #expect(error == .cancelled)
        }
    }

    @Test func cancellingClosesTheConnection() async throws {
        let server = try TransportTestServer()
        func waitFor(_ text: String) async throws -> Bool {
            for _ in 0..<200 {
                if server.recorded.contains(text) { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        let holdURL = server.origin + "/hold"
        let held = Task { try await HTTP(timeout: 60).send("GET", holdURL) }
        #expect(try await waitFor("open /hold\n"))
        held.cancel()
        #expect(try await waitFor("closed /hold\n"), "the server never saw the cancelled request's connection close")
        let outcome = await Self.transportError { _ = try await held.value }
        #expect(outcome?.message == "cancelled", "\(String(describing: outcome))")

        // A v2 long poll cancelled by the client's shutdown: its connection closes too.
        let v2 = try V2KeysClient(baseURL: server.origin + "/hold-v2", timeout: 5, maxConnections: 1)
        let poll = Task { try await v2.wait("/k", timeout: 60) }
        #expect(try await waitFor("open /hold-v2/v2/keys/k\n"), "\(server.recorded)")
        await v2.shutdown()
        #expect(try await waitFor("closed /hold-v2/v2/keys/k\n"), "\(server.recorded)")
        let ended = await Self.transportError { _ = try await poll.value }
        #expect(ended?.message.contains("cancelled") == true, "\(String(describing: ended))")
    }
}

/// The misbehaving server of `HTTPTransportTests`, stopped when dropped.
final class TransportTestServer {
    let directory: TemporaryDirectory
    let process: Process
    let origin: String
    let record: String

    init() throws {
        directory = try TemporaryDirectory(prefix: "muster-http")
        let port = try FreePorts.pick(1)[0]
        record = directory.path + "/record"
        process = try ChildProcesses.start("/usr/bin/python3", ["-c", HTTPTransportTests.server, String(port), record],
                                           logPath: directory.path + "/server.log")
        origin = "http://127.0.0.1:\(port)"
        // Bound is not yet listening: wait (bounded) until a connection is accepted, or the
        // first request of a slow start would be refused.
        for _ in 0..<200 {
            if FreePorts.accepts(port) { break }
            usleep(50_000)
        }
    }

    var recorded: String { (try? String(contentsOfFile: record, encoding: .utf8)) ?? "" }

    deinit { ChildProcesses.forceStop(process) }
}
