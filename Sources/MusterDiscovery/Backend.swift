import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One answer of the backing etcd's v2 keys API, kept as etcd sent it.
struct BackendAnswer: Sendable {
    var status: Int
    var body: Data
    /// The v2 headers etcd's client reads (`X-Etcd-Index` gives the watch start index).
    var etcdHeaders: [(name: String, value: String)]
    var contentType: String?

    static let passedHeaders = ["X-Etcd-Index", "X-Etcd-Cluster-Id", "X-Raft-Index", "X-Raft-Term"]

    /// etcd's JSON error code (`100` key not found, `105` key exists...), when the body is one.
    var errorCode: Int? {
        (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["errorCode"] as? Int
    }
    /// etcd answered in JSON (a v2 answer), not a plain `404 page not found` of a server
    /// without the v2 API.
    var isV2JSON: Bool {
        (try? JSONSerialization.jsonObject(with: body)) is [String: Any]
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// The backing etcd could not be reached, or did not answer in time.
struct BackendUnavailable: Error, CustomStringConvertible {
    var url: String
    var reason: String
    var timedOut: Bool
    var description: String { "backing etcd \(url): \(reason)" }
}

/// A small client of the backing etcd's v2 keys API (URLSession): every key the service touches
/// lives under `registry` (`/_etcd/registry/TOKEN/...`, the layout etcd-io/discoveryserver uses).
final class RegistryBackend: Sendable {
    static let registry = "/_etcd/registry"

    let etcdURL: String
    let timeout: TimeInterval
    private let session: URLSession

    init(etcdURL: String, timeout: TimeInterval) {
        var url = etcdURL
        while url.hasSuffix("/") { url.removeLast() }
        self.etcdURL = url
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration)
    }

    deinit { session.invalidateAndCancel() }

    /// `ETCD/v2/keys/_etcd/registry/TOKEN[/KEY...]`.
    func keyURL(_ components: [String]) -> String {
        etcdURL + "/v2/keys" + RegistryBackend.registry + components.map { "/" + $0 }.joined()
    }

    /// Sends one v2 request. `timeout` bounds the whole exchange (a long poll passes a longer
    /// one): when it passes, the request is cancelled and `BackendUnavailable.timedOut` thrown.
    func send(_ method: String, _ components: [String], query: [(name: String, value: String)] = [],
              form: [(name: String, value: String)]? = nil, timeout: TimeInterval? = nil) async throws -> BackendAnswer {
        var text = keyURL(components)
        if !query.isEmpty { text += "?" + DiscoveryRules.encodeForm(query) }
        guard let url = URL(string: text) else {
            throw BackendUnavailable(url: text, reason: "not a URL", timedOut: false)
        }
        let limit = timeout ?? self.timeout
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = limit + 5
        if let form {
            request.httpBody = Data(DiscoveryRules.encodeForm(form).utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let prepared = request
        let (data, response) = try await Self.bounded(seconds: limit, url: text) { [session] in
            try await session.data(for: prepared)
        }
        guard let http = response as? HTTPURLResponse else {
            throw BackendUnavailable(url: text, reason: "not an HTTP answer", timedOut: false)
        }
        var headers: [(name: String, value: String)] = []
        for name in BackendAnswer.passedHeaders {
            if let value = http.value(forHTTPHeaderField: name) { headers.append((name, value)) }
        }
        return BackendAnswer(status: http.statusCode, body: data, etcdHeaders: headers,
                             contentType: http.value(forHTTPHeaderField: "Content-Type"))
    }

    /// Runs `body`, giving up after `seconds` whether or not the work notices cancellation (the
    /// work is cancelled, and its late result dropped).
    static func bounded<T: Sendable>(seconds: TimeInterval, url: String,
                                     _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                once.set(continuation)
                let work = Task {
                    do { once.resume(.success(try await body())) } catch {
                        once.resume(.failure(BackendUnavailable(url: url, reason: "\(error)", timedOut: false)))
                    }
                }
                let timer = Task {
                    try? await Task.sleep(nanoseconds: UInt64(max(seconds, 0) * 1_000_000_000))
                    work.cancel()
                    once.resume(.failure(BackendUnavailable(url: url, reason: "no answer within \(seconds) s", timedOut: true)))
                }
                once.onResume { work.cancel(); timer.cancel() }
            }
        } onCancel: {
            once.resume(.failure(CancellationError()))
        }
    }
}

/// Resumes a continuation exactly once, whoever comes first; later results are dropped.
private final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Error>?
    private var pending: Result<T, Error>?
    private var done = false
    private var cleanup: (@Sendable () -> Void)?

    func set(_ continuation: CheckedContinuation<T, Error>) {
        lock.lock()
        if let pending {
            lock.unlock()
            continuation.resume(with: pending)
            return
        }
        self.continuation = continuation
        lock.unlock()
    }

    func onResume(_ body: @escaping @Sendable () -> Void) {
        lock.lock()
        if done { lock.unlock(); body(); return }
        cleanup = body
        lock.unlock()
    }

    func resume(_ result: Result<T, Error>) {
        lock.lock()
        guard !done else { lock.unlock(); return }
        done = true
        let continuation = self.continuation
        self.continuation = nil
        if continuation == nil { pending = result }
        let cleanup = self.cleanup
        self.cleanup = nil
        lock.unlock()
        continuation?.resume(with: result)
        cleanup?()
    }
}
