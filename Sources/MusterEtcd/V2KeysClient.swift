import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One answer of an etcd v2 keys API, kept as etcd sent it: status, body, the `X-Etcd-*`
/// headers etcd's own v2 client reads, and the content type.
public struct V2KeysAnswer: Sendable {
    public var status: Int
    public var body: Data
    /// `X-Etcd-Index` (where a watch starts), `X-Etcd-Cluster-Id`, `X-Raft-Index`, `X-Raft-Term`.
    public var etcdHeaders: [(name: String, value: String)]
    public var contentType: String?

    public static let passedHeaders = ["X-Etcd-Index", "X-Etcd-Cluster-Id", "X-Raft-Index", "X-Raft-Term"]

    public init(status: Int, body: Data, etcdHeaders: [(name: String, value: String)] = [], contentType: String? = nil) {
        self.status = status
        self.body = body
        self.etcdHeaders = etcdHeaders
        self.contentType = contentType
    }

    /// etcd's JSON error code (`100` key not found, `105` key exists...), when the body is one.
    public var errorCode: Int? { (try? JSONDecoder().decode(V2Keys.V2Answer.self, from: body))?.errorCode }
    /// etcd answered in JSON (a v2 answer), not the plain `404 page not found` of a server
    /// without the v2 API.
    public var isV2JSON: Bool { (try? JSONSerialization.jsonObject(with: body)) is [String: Any] }
    /// `node.value`, when the answer holds one node with a value.
    public var nodeValue: String? { (try? JSONDecoder().decode(V2Keys.V2Answer.self, from: body))?.node?.value }
    /// The last path components of a directory listing's children.
    public var childNames: [String] {
        let nodes = (try? JSONDecoder().decode(V2Keys.V2Answer.self, from: body))?.node?.nodes ?? []
        return nodes.compactMap { $0.key.split(separator: "/").last.map(String.init) }
    }
    public var text: String { String(decoding: body, as: UTF8.self) }
    public var isKeyNotFound: Bool { status == 404 && errorCode == 100 }
}

/// A client of one etcd's v2 keys API (`BASE/v2/keys/...`) with its own connection pool.
///
/// Long polls (`wait`) hold a connection each for as long as they wait, so the pool is sized
/// by the caller (`maxConnections`) above the number of long polls it lets run at once: the
/// remaining connections always serve short calls (a registration never queues behind waits).
/// Every call is bounded in time, the answer's body included (a long poll's headers come at
/// once; its body only when something happens). Call `shutdown()` when done.
public final class V2KeysClient: Sendable {
    /// `http://HOST:PORT` (no trailing slash).
    public let baseURL: String
    /// The bound of every call but `wait`.
    public let timeout: TimeInterval
    public let maxConnections: Int
    private let client: HTTPClient

    /// Answers larger than this are an error. Generous: a listing of the registry's root names
    /// every token (~100 bytes each), and the sweep must still read it with many thousands.
    public static let maximumAnswer = 64 << 20

    public init(baseURL: String, timeout: TimeInterval = V2Keys.defaultTimeout, maxConnections: Int = 8,
                tls: EtcdTLS? = nil) throws(EtcdClientError) {
        self.baseURL = V2Keys.trimmed(baseURL)
        self.timeout = timeout
        self.maxConnections = max(maxConnections, 1)
        guard let url = URL(string: self.baseURL), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw EtcdClientError(kind: .badURL, url: baseURL, message: "not an http(s) URL")
        }
        // No read timeout: a long poll reads nothing for as long as it waits. Every call has its
        // own bound instead (see `send`).
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: nil))
        configuration.httpVersion = .http1Only
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = self.maxConnections
        configuration.connectionPool.idleTimeout = .seconds(30)
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls { configuration.tlsConfiguration = try tls.configuration() }
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    deinit { _ = client.shutdown() }

    /// Closes the pool's connections (waits for nothing in flight: those are cancelled).
    public func shutdown() async {
        try? await client.shutdown()
    }

    // MARK: The calls

    /// `GET KEY`: a value, or a directory's listing.
    public func get(_ key: String, recursive: Bool = false, sorted: Bool = false,
                    quorum: Bool = false) async throws(EtcdClientError) -> V2KeysAnswer {
        var query: [(name: String, value: String)] = []
        if recursive { query.append(("recursive", "true")) }
        if sorted { query.append(("sorted", "true")) }
        if quorum { query.append(("quorum", "true")) }
        return try await send("GET", key, query: query)
    }

    /// `GET KEY?wait=true[&waitIndex=N][&recursive=true]`: the next change at or after
    /// `waitIndex`. Nil when nothing happened within `timeout` (the call is then cancelled and
    /// its connection closed).
    public func wait(_ key: String, waitIndex: UInt64? = nil, recursive: Bool = false,
                     timeout: TimeInterval) async throws(EtcdClientError) -> V2KeysAnswer? {
        var query: [(name: String, value: String)] = [("wait", "true")]
        if let waitIndex { query.append(("waitIndex", String(waitIndex))) }
        if recursive { query.append(("recursive", "true")) }
        switch await exchange("GET", key, query: query, form: nil, timeout: timeout) {
        case .answer(let answer): return answer
        case .failed(let error): throw error
        case .timedOut: return nil
        }
    }

    /// `PUT KEY value=...`; `prevExist: false` creates only (`412`, errorCode 105 when the key is
    /// there), `true` replaces only; `ttl` makes the key expire after that many seconds.
    public func put(_ key: String, value: String, prevExist: Bool? = nil, prevIndex: UInt64? = nil,
                    prevValue: String? = nil, ttl: Int? = nil) async throws(EtcdClientError) -> V2KeysAnswer {
        var query: [(name: String, value: String)] = []
        if let prevExist { query.append(("prevExist", prevExist ? "true" : "false")) }
        if let prevIndex { query.append(("prevIndex", String(prevIndex))) }
        if let prevValue { query.append(("prevValue", prevValue)) }
        var form: [(name: String, value: String)] = [("value", value)]
        if let ttl { form.append(("ttl", String(ttl))) }
        return try await send("PUT", key, query: query, form: form)
    }

    /// `DELETE KEY`; `recursive` removes a directory and all under it.
    public func delete(_ key: String, recursive: Bool = false, prevIndex: UInt64? = nil,
                       prevValue: String? = nil) async throws(EtcdClientError) -> V2KeysAnswer {
        var query: [(name: String, value: String)] = []
        if recursive { query += [("dir", "true"), ("recursive", "true")] }
        if let prevIndex { query.append(("prevIndex", String(prevIndex))) }
        if let prevValue { query.append(("prevValue", prevValue)) }
        return try await send("DELETE", key, query: query)
    }

    /// One v2 request as given: `key` is a path under `/v2/keys` (`/a/b`, each component
    /// escaped here), `query` and `form` are sent form-encoded. Bounded by `timeout` (default:
    /// the client's) from start to the last byte of the answer; a call that runs out throws
    /// an `EtcdClientError` saying it timed out. Any HTTP answer is returned, whatever its status.
    public func send(_ method: String, _ key: String, query: [(name: String, value: String)] = [],
                     form: [(name: String, value: String)]? = nil,
                     timeout: TimeInterval? = nil) async throws(EtcdClientError) -> V2KeysAnswer {
        let limit = timeout ?? self.timeout
        switch await exchange(method, key, query: query, form: form, timeout: limit) {
        case .answer(let answer): return answer
        case .failed(let error): throw error
        case .timedOut:
            throw EtcdClientError(kind: .transport, url: keyURL(key),
                                  message: "timed out (no answer within \(V2Keys.seconds(limit)))")
        }
    }

    enum Outcome: Sendable {
        case answer(V2KeysAnswer)
        case failed(EtcdClientError)
        case timedOut
    }

    /// The exchange raced against `timeout`: whichever ends first wins, the other is cancelled
    /// (a cancelled AsyncHTTPClient request closes its connection).
    func exchange(_ method: String, _ key: String, query: [(name: String, value: String)],
                  form: [(name: String, value: String)]?, timeout: TimeInterval) async -> Outcome {
        var url = keyURL(key)
        if !query.isEmpty { url += "?" + V2Keys.encodeForm(query) }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        if let form {
            request.body = .bytes(ByteBuffer(string: V2Keys.encodeForm(form)))
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        }
        let limit = max(timeout, 0.001)
        let client = self.client
        let prepared = request
        let target = url
        return await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                do {
                    // AsyncHTTPClient's deadline bounds the head only; the race bounds the body.
                    let response = try await client.execute(prepared, deadline: .now() + .milliseconds(Int64(limit * 1000) + 1000))
                    let buffer = try await response.body.collect(upTo: V2KeysClient.maximumAnswer)
                    var headers: [(name: String, value: String)] = []
                    for name in V2KeysAnswer.passedHeaders {
                        if let value = response.headers.first(name: name) { headers.append((name, value)) }
                    }
                    return .answer(V2KeysAnswer(status: Int(response.status.code), body: Data(buffer.readableBytesView),
                                                etcdHeaders: headers, contentType: response.headers.first(name: "Content-Type")))
                } catch {
                    if Task.isCancelled { return nil }
                    return .failed(EtcdClientError(kind: HTTP.isTLS(error) ? .tls : .transport, url: target,
                                                   message: HTTP.describe(error)))
                }
            }
            group.addTask {
                do { try await Task.sleep(nanoseconds: UInt64(limit * 1_000_000_000)) } catch { return nil }
                return .timedOut
            }
            var outcome: Outcome?
            while outcome == nil, let next = await group.next() { outcome = next }
            group.cancelAll()
            return outcome ?? .failed(EtcdClientError(kind: .transport, url: target, message: "cancelled"))
        }
    }

    /// `BASE/v2/keys/A/B`, each component escaped.
    public func keyURL(_ key: String) -> String {
        let components = key.split(separator: "/", omittingEmptySubsequences: true)
        return baseURL + "/v2/keys" + components.map { "/" + V2Keys.escape(String($0)) }.joined()
    }
}

extension V2Keys {
    /// Encodes pairs as a form body or query string, escaping all but RFC 3986 unreserved octets.
    public static func encodeForm(_ pairs: [(name: String, value: String)]) -> String {
        pairs.map { escape($0.name) + "=" + escape($0.value) }.joined(separator: "&")
    }

    /// Percent-escapes every octet but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`).
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func seconds(_ value: TimeInterval) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}

extension EtcdClientError {
    /// A call that produced no HTTP answer (for callers outside this module wrapping their own
    /// failures in the same shape).
    public init(transport message: String, url: String) {
        self.init(kind: .transport, url: url, httpStatus: nil, message: message)
    }
}
