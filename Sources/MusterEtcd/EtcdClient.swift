import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Why a call to an etcd endpoint did not produce a result.
public struct EtcdClientError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable { case transport, tls, http, decoding, badURL }
    public var kind: Kind
    /// The URL that was asked.
    public var url: String
    public var httpStatus: Int?
    public var message: String

    public var description: String {
        switch kind {
        case .transport: return "\(url): \(message)"
        case .tls: return url.isEmpty ? "TLS: \(message)" : "\(url): \(message)"
        case .http: return "\(url): HTTP \(httpStatus ?? 0): \(message)"
        case .decoding: return "\(url): unexpected answer: \(message)"
        case .badURL: return "bad URL \(url): \(message)"
        }
    }
}

/// A raw HTTP answer.
struct HTTPAnswer: Sendable {
    var status: Int
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Minimal HTTP over `HTTPTransport` (SwiftNIO), shared by the v3 gateway client and the v2
/// discovery helpers. (Foundation's URLSession cannot present a client certificate on Linux.)
package struct HTTP: Sendable {
    var timeout: TimeInterval
    let tls: EtcdTLS?
    /// The shared transport for `tls`, or why it could not be made (unreadable certificate files):
    /// reported by every request, so building a client never fails.
    private let transport: Result<Transport, EtcdClientError>

    /// TCP connect bound, and the bound of any silence once connected (a stalled body).
    static let connectTimeout = TimeAmount.seconds(10)
    static let readTimeout = TimeAmount.seconds(30)

    init(timeout: TimeInterval, tls: EtcdTLS? = nil) {
        self.timeout = timeout
        self.tls = tls
        transport = Transport.shared(for: tls)
    }

    /// Whether the transport for this client's TLS configuration could be made.
    var transportError: EtcdClientError? {
        if case .failure(let error) = transport { return error }
        return nil
    }

    /// The TLS context for `urlString` (nil for `http`), for requests `send` cannot make (a
    /// streamed answer: `EtcdClient.saveSnapshot`).
    func tlsContext(for urlString: String) throws(EtcdClientError) -> NIOSSLContext? {
        guard let target = HTTPTransport.Target(urlString) else {
            throw EtcdClientError(kind: .badURL, url: urlString, message: "not an http(s) URL")
        }
        switch transport {
        case .success(let shared):
            guard target.isTLS else { return nil }
            do { return try shared.context() } catch {
                throw EtcdClientError(kind: .tls, url: urlString, message: "\(error)")
            }
        case .failure(var error):
            error.url = urlString
            throw error
        }
    }

    func send(_ method: String, _ urlString: String, body: Data? = nil,
              contentType: String? = nil) async throws(EtcdClientError) -> HTTPAnswer {
        let context = try tlsContext(for: urlString)
        var request = HTTPTransport.Request(method: HTTPMethod(rawValue: method), url: urlString)
        if let body {
            request.body = ByteBuffer(bytes: body)
            request.headers.append(("Content-Type", contentType ?? "application/json"))
        }
        // The deadline bounds the exchange until the answer's head; the read timeout bounds a
        // body that stalls after it.
        let milliseconds = Int64((max(timeout, 0.001) * 1000).rounded(.up))
        let limits = HTTPTransport.Limits(connectTimeout: HTTP.connectTimeout, deadline: .now() + .milliseconds(milliseconds),
                                          deadlineCoversBody: false, readTimeout: HTTP.readTimeout)
        do {
            return try await HTTPTransport.exchange(request, tls: context, limits: limits) { head, body in
                if (300..<400).contains(head.status.code) {
                    // Printable ASCII only: the header is the server's text, shown on a terminal.
                    let location = String((head.headers.first(name: "Location") ?? "nowhere").unicodeScalars
                        .filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(200).map(Character.init))
                    throw EtcdClientError(kind: .http, url: urlString, httpStatus: Int(head.status.code),
                                          message: "redirected (HTTP \(head.status.code)) to \(location); muster follows no redirects")
                }
                let buffer = try await body.collect(upTo: HTTP.maximumBody)
                return HTTPAnswer(status: Int(head.status.code), body: Data(buffer.readableBytesView))
            }
        } catch {
            throw HTTP.clientError(error, url: urlString)
        }
    }

    static let maximumBody = 16 << 20

    /// An exchange's failure as muster says it: `.tls` for a TLS failure (a certificate not
    /// naming the URL's host said so), `.transport` for the rest; an `EtcdClientError` as it is.
    static func clientError(_ error: any Error, url: String, prefix: String = "") -> EtcdClientError {
        if let error = error as? EtcdClientError { return error }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            let host = HTTPTransport.Target(url)?.host ?? "this host"
            return EtcdClientError(kind: .tls, url: url, message: "the server's certificate does not name \(host) (SANs)")
        }
        return EtcdClientError(kind: isTLS(error) ? .tls : .transport, url: url, message: prefix + describe(error))
    }

    static func isTLS(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }

    /// Short, stable wording for the usual failures ("connection refused", "timed out", ...).
    package static func describe(_ error: any Error) -> String {
        if let transport = error as? HTTPTransportError {
            switch transport {
            case .deadlineExceeded, .connectTimeout, .readTimeout: return "timed out"
            case .connectionClosed: return "connection lost"
            case .cancelled: return "cancelled"
            case .answerTooLarge(let limit): return "answer larger than \(limit >> 20) MiB"
            case .badURL: return "not an http(s) URL"
            }
        }
        if let channel = error as? ChannelError, case .connectTimeout = channel { return "timed out" }
        if let connection = error as? NIOConnectionError {
            for failure in connection.connectionErrors {
                if let io = failure.error as? IOError, let text = describe(errno: io.errnoCode) { return text }
            }
            if connection.connectionErrors.isEmpty && (connection.dnsAError != nil || connection.dnsAAAAError != nil) {
                return "cannot resolve host"
            }
        }
        if let io = error as? IOError, let text = describe(errno: io.errnoCode) { return text }
        if let ssl = error as? NIOSSLError {
            switch ssl {
            case .handshakeFailed(let inner): return TLSFailure.explain("\(inner)")
            case .uncleanShutdown: return "TLS connection closed uncleanly"
            default: return "TLS: \(ssl)"
            }
        }
        if error is BoringSSLError { return TLSFailure.explain("\(error)") }
        let text = "\(error)"
        let lowered = text.lowercased()
        if lowered.contains("connection refused") { return "connection refused" }
        if lowered.contains("connection reset") { return "connection reset" }
        if lowered.contains("no route to host") { return "no route to host" }
        if lowered.contains("could not resolve") || lowered.contains("name or service not known")
            || lowered.contains("unknown host") { return "cannot resolve host" }
        return text
    }

    private static func describe(errno code: Int32) -> String? {
        switch code {
        case ECONNREFUSED: return "connection refused"
        case ECONNRESET: return "connection reset"
        case EHOSTUNREACH: return "no route to host"
        case ENETUNREACH: return "network unreachable"
        case ETIMEDOUT: return "timed out"
        default: return nil
        }
    }
}

/// TLS for talking to etcd: trust only the cluster CA and present a client certificate (PEM files).
public struct EtcdTLS: Sendable, Hashable, CustomStringConvertible {
    public var caPath: String
    public var certPath: String
    public var keyPath: String

    public init(caPath: String, certPath: String, keyPath: String) {
        self.caPath = caPath
        self.certPath = certPath
        self.keyPath = keyPath
    }

    public var description: String { "ca \(caPath), cert \(certPath), key \(keyPath)" }

    /// NIOSSL's client configuration: the CA file as the only trust root, the client certificate
    /// and key, full verification (chain and the endpoint's name or IP in the server's SANs).
    func configuration() throws(EtcdClientError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        func load<T>(_ path: String, _ what: String, _ body: () throws -> T) throws(EtcdClientError) -> T {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw EtcdClientError(kind: .tls, url: "", message: "\(what) \(path) is missing or unreadable")
            }
            do { return try body() } catch {
                throw EtcdClientError(kind: .tls, url: "", message: "\(what) \(path): \(error)")
            }
        }
        let roots = try load(caPath, "CA certificate") { try NIOSSLCertificate.fromPEMFile(caPath) }
        guard !roots.isEmpty else {
            throw EtcdClientError(kind: .tls, url: "", message: "CA certificate \(caPath) holds no certificate")
        }
        configuration.trustRoots = .certificates(roots)
        let chain = try load(certPath, "client certificate") { try NIOSSLCertificate.fromPEMFile(certPath) }
        configuration.certificateChain = chain.map { .certificate($0) }
        let key = try load(keyPath, "client key") { try NIOSSLPrivateKey(file: keyPath, format: .pem) }
        configuration.privateKey = .privateKey(key)
        return configuration
    }
}

/// One TLS context per TLS configuration (`nil`: plain http, and https with the system's
/// roots), made once per process (a run) and shared by every `EtcdClient` with that
/// configuration: a health poll every 50 ms asks a new client each time, and must not read the
/// PEM files and build a context each time. A certificate file replaced since (a new CA at the
/// same path: another cluster of that name, `down --wipe` then `up` in one test process) makes
/// a new context: the files' identities (`stat`) are compared, not their contents. Connections
/// are not shared: `HTTPTransport` makes one per request.
final class Transport: Sendable {
    let tls: EtcdTLS?
    /// The context from `tls`; for `nil`, made on first https use (system roots).
    private let made: NIOSSLContext?

    private init(tls: EtcdTLS?, context: NIOSSLContext?) {
        self.tls = tls
        self.made = context
    }

    func context() throws -> NIOSSLContext {
        if let made { return made }
        return try Transport.systemRoots.get()
    }

    /// https without muster's CA (a public discovery service): the system's trust roots.
    private static let systemRoots = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }

    /// What `stat` says of a file a context was made from; nil when it cannot be read.
    private struct FileIdentity: Hashable {
        var device: UInt64, inode: UInt64, size: Int64, modified: Int, modifiedNanoseconds: Int

        init?(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        }
    }

    private struct Entry {
        var files: [FileIdentity?]
        var transport: Transport
    }
    private static let contexts = Mutex<[EtcdTLS?: Entry]>([:])

    static func shared(for tls: EtcdTLS?) -> Result<Transport, EtcdClientError> {
        let files = tls.map { [$0.caPath, $0.certPath, $0.keyPath].map(FileIdentity.init) } ?? []
        if let entry = contexts.withLock({ $0[tls] }), entry.files == files, !files.contains(nil) {
            return .success(entry.transport)
        }
        var context: NIOSSLContext?
        if let tls {
            // A redirect is never followed and HTTP/1.1 only is spoken (`HTTPTransport`): no
            // ALPN, so etcd's gateway answers, not its gRPC side.
            do {
                let configuration = try tls.configuration()
                do { context = try NIOSSLContext(configuration: configuration) } catch {
                    return .failure(EtcdClientError(kind: .tls, url: "", message: "\(error)"))
                }
            } catch {
                return .failure(error)
            }
        }
        let transport = Transport(tls: tls, context: context)
        contexts.withLock { $0[tls] = Entry(files: files, transport: transport) }
        return .success(transport)
    }
}

/// A client for one etcd member's HTTP JSON gateway (`/v3/...`), `/health` and `/version`.
///
/// `baseURL` is the member's client URL, e.g. `http://10.0.0.1:2379` or `https://...` (or the
/// local end of an SSH tunnel to it). Every request is bounded by `timeout` seconds. With `tls`,
/// the member must present a certificate signed by `tls.caPath` naming the URL's host, and the
/// client presents `tls.certPath`. Needs no etcdctl.
public struct EtcdClient: Sendable {
    public let baseURL: String
    public let timeout: TimeInterval
    public let tls: EtcdTLS?
    let http: HTTP

    public init(baseURL: String, timeout: TimeInterval = 5) {
        self.init(baseURL: baseURL, timeout: timeout, tls: nil)
    }

    /// A client that speaks TLS with a client certificate when `tls` is set. Unreadable
    /// certificate files do not fail here: every request then throws a `.tls` error saying why.
    public init(baseURL: String, timeout: TimeInterval = 5, tls: EtcdTLS?) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.timeout = timeout
        self.tls = tls
        http = HTTP(timeout: timeout, tls: tls)
    }

    // MARK: Cluster and maintenance

    public func memberList() async throws(EtcdClientError) -> MemberListResponse {
        try await post("/v3/cluster/member/list", [:])
    }

    public func status() async throws(EtcdClientError) -> EndpointStatus {
        try await post("/v3/maintenance/status", [:])
    }

    /// Alarms raised anywhere in the cluster (`NONE` entries dropped).
    public func alarms() async throws(EtcdClientError) -> [EtcdAlarm] {
        let response: AlarmResponse = try await post("/v3/maintenance/alarm", ["action": "GET"])
        return response.alarms.filter { $0.alarm != "NONE" }
    }

    /// `GET /health`. Throws only when there is no HTTP answer at all (or an unexpected status).
    public func health() async throws(EtcdClientError) -> HealthResult {
        let clock = ContinuousClock()
        let start = clock.now
        let answer = try await http.send("GET", baseURL + "/health")
        let latency = clock.now - start
        struct Body: Decodable { var health: String?; var reason: String? }
        let body = try? JSONDecoder().decode(Body.self, from: answer.body)
        guard answer.status == 200 || answer.status == 503 || body?.health != nil else {
            throw EtcdClientError(kind: .http, url: baseURL + "/health", httpStatus: answer.status,
                                  message: EtcdClient.gatewayMessage(answer))
        }
        let healthy = answer.status == 200 && body?.health == "true"
        var reason = body?.reason ?? ""
        if reason.isEmpty && !healthy {
            reason = body == nil ? answer.text.trimmingCharacters(in: .whitespacesAndNewlines)
                                 : "health \(body?.health ?? "missing") (HTTP \(answer.status))"
        }
        return HealthResult(healthy: healthy, httpStatus: answer.status, reason: reason, latency: latency)
    }

    public func version() async throws(EtcdClientError) -> VersionInfo {
        let url = baseURL + "/version"
        let answer = try await http.send("GET", url)
        return try EtcdClient.decode(answer, url: url)
    }

    /// `GET /metrics`: the member's Prometheus metrics as text.
    public func metrics() async throws(EtcdClientError) -> String {
        let url = baseURL + "/metrics"
        let answer = try await http.send("GET", url)
        guard answer.status == 200 else {
            throw EtcdClientError(kind: .http, url: url, httpStatus: answer.status, message: EtcdClient.gatewayMessage(answer))
        }
        return answer.text
    }

    // MARK: Keys

    @discardableResult
    public func put(_ key: String, _ value: String) async throws(EtcdClientError) -> PutResponse {
        try await post("/v3/kv/put", ["key": Base64Text.encode(key), "value": Base64Text.encode(value)])
    }

    /// Reads one key. `linearizable: true` (etcd's default) goes through raft consensus;
    /// `false` asks for a serializable read served from the member's local state.
    public func get(_ key: String, linearizable: Bool = true) async throws(EtcdClientError) -> RangeResponse {
        var body: [String: any Sendable] = ["key": Base64Text.encode(key)]
        if !linearizable { body["serializable"] = true }
        return try await post("/v3/kv/range", body)
    }

    @discardableResult
    public func delete(_ key: String) async throws(EtcdClientError) -> DeleteResponse {
        try await post("/v3/kv/deleterange", ["key": Base64Text.encode(key)])
    }

    // MARK: Plumbing

    func post<T: Decodable>(_ path: String, _ body: [String: any Sendable]) async throws(EtcdClientError) -> T {
        let url = baseURL + path
        let data: Data
        do {
            data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        } catch {
            throw EtcdClientError(kind: .badURL, url: url, message: "cannot encode request: \(error)")
        }
        let answer = try await http.send("POST", url, body: data)
        return try EtcdClient.decode(answer, url: url)
    }

    static func decode<T: Decodable>(_ answer: HTTPAnswer, url: String) throws(EtcdClientError) -> T {
        guard answer.status == 200 else {
            throw EtcdClientError(kind: .http, url: url, httpStatus: answer.status,
                                  message: gatewayMessage(answer))
        }
        do {
            return try JSONDecoder().decode(T.self, from: answer.body)
        } catch {
            throw EtcdClientError(kind: .decoding, url: url, httpStatus: answer.status,
                                  message: "\(error); body: \(answer.text.prefix(200))")
        }
    }

    /// The gateway's error message (`{"error": ..., "message": ..., "code": N}`) or the raw body.
    static func gatewayMessage(_ answer: HTTPAnswer) -> String {
        struct GatewayError: Decodable { var error: String?; var message: String? }
        if let parsed = try? JSONDecoder().decode(GatewayError.self, from: answer.body),
           let message = parsed.message ?? parsed.error {
            return message
        }
        let text = answer.text.trimmingCharacters(in: .whitespacesAndNewlines)
        if answer.status == 404 && text.contains("404 page not found") {
            return "404 page not found (etcd 3.4 started with --config-file needs enable-grpc-gateway: true)"
        }
        return text.isEmpty ? "empty body" : String(text.prefix(300))
    }
}
