import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

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

/// A client of one etcd's v2 keys API (`BASE/v2/keys/...`), at most `maxConnections` requests
/// (each its own connection, `HTTPTransport`) at once; more wait their turn.
///
/// Long polls (`wait`) hold a connection each for as long as they wait, so the cap is set
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
    /// The TLS context of an https `baseURL`.
    private let tlsContext: NIOSSLContext?
    private let gate: ConnectionGate
    private let calls = NIOLockedValueBox(Calls())

    /// The calls under way (cancelled by `shutdown`), and whether it was called.
    private struct Calls {
        var shut = false
        var next: UInt64 = 0
        var running: [UInt64: Task<Outcome, Never>] = [:]
    }

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
        let configuration = try tls?.configuration()
        if url.scheme == "https" {
            do { tlsContext = try NIOSSLContext(configuration: configuration ?? .makeClientConfiguration()) } catch {
                throw EtcdClientError(kind: .tls, url: baseURL, message: "\(error)")
            }
        } else {
            tlsContext = nil
        }
        gate = ConnectionGate(self.maxConnections)
    }

    /// Cancels the calls under way (their connections are closed) and refuses new ones.
    public func shutdown() async {
        let running = calls.withLockedValue { calls -> [Task<Outcome, Never>] in
            calls.shut = true
            return Array(calls.running.values)
        }
        for task in running { task.cancel() }
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

    /// The exchange (its wait for a free connection included) raced against `timeout`:
    /// whichever ends first wins, the other is cancelled (a cancelled exchange closes its
    /// connection).
    func exchange(_ method: String, _ key: String, query: [(name: String, value: String)],
                  form: [(name: String, value: String)]?, timeout: TimeInterval) async -> Outcome {
        var url = keyURL(key)
        if !query.isEmpty { url += "?" + V2Keys.encodeForm(query) }
        var request = HTTPTransport.Request(method: HTTPMethod(rawValue: method), url: url)
        if let form {
            request.body = ByteBuffer(string: V2Keys.encodeForm(form))
            request.headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        }
        let limit = max(timeout, 0.001)
        let prepared = request
        let target = url
        let context = tlsContext
        let gate = self.gate
        let call = calls.withLockedValue { calls -> (UInt64, Task<Outcome, Never>)? in
            guard !calls.shut else { return nil }
            calls.next += 1
            let task = Task<Outcome, Never> {
                await withTaskGroup(of: Outcome?.self) { group in
                    group.addTask {
                        guard await gate.enter() else { return nil }
                        defer { gate.leave() }
                        // The transport's own deadline is a backstop a second past the race's.
                        let limits = HTTPTransport.Limits(
                            connectTimeout: .seconds(5), deadline: .now() + .milliseconds(Int64(limit * 1000) + 1000),
                            deadlineCoversBody: true, readTimeout: nil)
                        do {
                            return .answer(try await HTTPTransport.exchange(prepared, tls: context, limits: limits) { head, body in
                                let buffer = try await body.collect(upTo: V2KeysClient.maximumAnswer)
                                var headers: [(name: String, value: String)] = []
                                for name in V2KeysAnswer.passedHeaders {
                                    if let value = head.headers.first(name: name) { headers.append((name, value)) }
                                }
                                return V2KeysAnswer(status: Int(head.status.code), body: Data(buffer.readableBytesView),
                                                    etcdHeaders: headers, contentType: head.headers.first(name: "Content-Type"))
                            })
                        } catch {
                            if Task.isCancelled { return nil }
                            return .failed(HTTP.clientError(error, url: target))
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
            calls.running[calls.next] = task
            return (calls.next, task)
        }
        guard let (id, task) = call else {
            return .failed(EtcdClientError(kind: .transport, url: target, message: "cancelled (the client was shut down)"))
        }
        let outcome = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        _ = calls.withLockedValue { $0.running.removeValue(forKey: id) }
        return outcome
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

/// At most `limit` holders at once; the others wait in turn. A waiter whose task is cancelled
/// leaves the queue (`enter` returns false).
final class ConnectionGate: Sendable {
    private struct State {
        var free: Int
        var next: UInt64 = 0
        var waiting: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    }
    private let state: NIOLockedValueBox<State>

    init(_ limit: Int) { state = NIOLockedValueBox(State(free: max(limit, 1))) }

    func enter() async -> Bool {
        let id = state.withLockedValue { state -> UInt64 in
            state.next += 1
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let granted = state.withLockedValue { state -> Bool? in
                    if Task.isCancelled { return false }
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let granted { continuation.resume(returning: granted) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    /// Gives the place to the first waiter, or frees it.
    func leave() {
        let next = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume(returning: true)
    }
}
