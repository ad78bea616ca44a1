import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Why a call to an etcd endpoint did not produce a result.
public struct EtcdClientError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable { case transport, http, decoding, badURL }
    public var kind: Kind
    /// The URL that was asked.
    public var url: String
    public var httpStatus: Int?
    public var message: String

    public var description: String {
        switch kind {
        case .transport: return "\(url): \(message)"
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

/// Minimal HTTP over URLSession, shared by the v3 gateway client and the v2 discovery helpers.
struct HTTP: Sendable {
    var timeout: TimeInterval
    private let owner: SessionOwner
    var session: URLSession { owner.session }

    /// Owns the URLSession and invalidates it when the last copy of the client goes away.
    final class SessionOwner: Sendable {
        let session: URLSession
        init(_ session: URLSession) { self.session = session }
        deinit { session.finishTasksAndInvalidate() }
    }

    init(timeout: TimeInterval) {
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        owner = SessionOwner(URLSession(configuration: configuration))
    }

    func send(_ method: String, _ urlString: String, body: Data? = nil,
              contentType: String? = nil) async throws(EtcdClientError) -> HTTPAnswer {
        guard let url = URL(string: urlString), url.scheme == "http" || url.scheme == "https" else {
            throw EtcdClientError(kind: .badURL, url: urlString, message: "not an http(s) URL")
        }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData,
                                 timeoutInterval: timeout)
        request.httpMethod = method
        if let body {
            request.httpBody = body
            request.setValue(contentType ?? "application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data, response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw EtcdClientError(kind: .transport, url: urlString, message: HTTP.describe(error))
        }
        guard let http = response as? HTTPURLResponse else {
            throw EtcdClientError(kind: .transport, url: urlString, message: "not an HTTP response")
        }
        return HTTPAnswer(status: http.statusCode, body: data)
    }

    static func describe(_ error: any Error) -> String {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotConnectToHost: return "connection refused"
            case .timedOut: return "timed out"
            case .cannotFindHost: return "cannot resolve host"
            case .networkConnectionLost: return "connection lost"
            default: break
            }
            return urlError.localizedDescription
        }
        return "\(error)"
    }
}

/// A client for one etcd member's HTTP JSON gateway (`/v3/...`), `/health` and `/version`.
///
/// `baseURL` is the member's client URL, e.g. `http://10.0.0.1:2379` (or the local end of an SSH
/// tunnel to it). Every request is bounded by `timeout` seconds. Needs no etcdctl.
public struct EtcdClient: Sendable {
    public let baseURL: String
    public let timeout: TimeInterval
    let http: HTTP

    public init(baseURL: String, timeout: TimeInterval = 5) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.timeout = timeout
        http = HTTP(timeout: timeout)
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
