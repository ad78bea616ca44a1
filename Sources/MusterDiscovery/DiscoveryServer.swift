import Foundation
import MusterEtcd
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// How `muster discovery serve` runs.
public struct DiscoveryServerOptions: Sendable {
    /// Address to listen on (an IP, or `0.0.0.0`), and port (0: any free port, see `onListening`).
    public var host: String
    public var port: Int
    /// The backing etcd's client URL; it must serve the v2 keys API (`--enable-v2`).
    public var etcdURL: String
    /// The start of every token URL `/new` hands out (`BASE/TOKEN`). Required when `host` is not
    /// a loopback address; without it, `http://HOST:PORT` of the listening socket. The request's
    /// `Host` header is never used (a client could name any host in it).
    public var baseURL: String?
    /// Where to write the service's pid once it listens (removed when it stops).
    public var pidfile: String?
    /// Tokens older than this are deleted by the sweep (7 days, like discovery.etcd.io).
    public var maxTokenAge: TimeInterval = 7 * 24 * 3600
    /// How often the sweep runs (also once at start).
    public var sweepInterval: TimeInterval = 3600
    /// A long poll (`?wait=true`) waits at most this long on the backing etcd, then answers 200
    /// with an empty body: etcd's v2 client then asks again with the same `waitIndex`.
    public var waitTimeout: TimeInterval = 30
    /// Any other call to the backing etcd.
    public var backendTimeout: TimeInterval = 10
    /// Request bodies (form `value=...`) larger than this get 413.
    public var maxBodyBytes = 64 * 1024
    /// Long polls waiting at once, all tokens together; one more gets 503. A token of size N
    /// takes at most `DiscoveryRules.maxLongPolls(size: N)` of them (one more gets 429). The
    /// connection pool to the backing etcd has `backendSpareConnections` more than this, so
    /// short calls (`/new`, registrations) never queue behind long polls.
    public var maxLongPolls = 256
    public var backendSpareConnections = 32
    /// Client connections open at once; one more is answered 503 and closed. One client (a
    /// source address; an IPv6 one by its /64) may hold `maxConnectionsPerClient` of them.
    public var maxConnections = 512
    public var maxConnectionsPerClient = 32
    /// Long polls one client may hold (429 beyond), so that it cannot take every slot.
    public var maxLongPollsPerClient = 32
    /// `/new` per client: `newTokensBurst` at once, then `newTokensPerMinute` (429 beyond, with
    /// Retry-After). A cluster of any size needs one token; a CI system behind one address making
    /// a cluster a minute stays within it.
    public var newTokensBurst = 10
    public var newTokensPerMinute = 6
    /// Tokens the backing etcd may hold in all (`/new` answers 503 beyond, until the sweep drops
    /// old ones); it also keeps the sweep's listing of every token bounded.
    public var maxTokens = 100_000
    /// A connection with no request in flight is closed after this many seconds; a request's
    /// head must arrive within `headerTimeout` of its first byte, its body within `bodyTimeout`
    /// of its head (else 408 and close).
    public var idleTimeout: TimeInterval = 60
    /// A new connection must send its first byte within this (a silent socket is closed).
    public var firstByteTimeout: TimeInterval = 5
    public var headerTimeout: TimeInterval = 10
    public var bodyTimeout: TimeInterval = 10
    /// Stop on SIGTERM/SIGINT (the CLI). In-process users (tests) stop it by cancelling `run`.
    public var handleSignals = false

    public init(host: String, port: Int, etcdURL: String, baseURL: String? = nil, pidfile: String? = nil) {
        self.host = host
        self.port = port
        self.etcdURL = etcdURL
        self.baseURL = baseURL
        self.pidfile = pidfile
    }

    /// 127.0.0.0/8 and ::1: the only addresses the service may listen on without `baseURL`.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    var limits: ServerLimits {
        func amount(_ seconds: TimeInterval) -> TimeAmount { .milliseconds(Int64(max(seconds, 0.001) * 1000)) }
        return ServerLimits(maxConnections: maxConnections, maxConnectionsPerClient: maxConnectionsPerClient,
                            firstByteTimeout: amount(firstByteTimeout), idleTimeout: amount(idleTimeout),
                            headerTimeout: amount(headerTimeout), bodyTimeout: amount(bodyTimeout),
                            maxBodyBytes: maxBodyBytes)
    }
}

/// The service refuses to start (a configuration it cannot serve safely).
public struct DiscoveryServerError: Error, CustomStringConvertible {
    public var description: String
}

/// A discovery.etcd.io-compatible service backed by a real etcd's v2 keys API.
///
/// - `GET /new?size=N` (N 1-99, default 3) makes a token, writes `_config/size` (and
///   `_config/created`) under `/_etcd/registry/TOKEN` in the backing etcd and answers
///   `BASE/TOKEN` as text/plain. `_config` is written only there.
/// - Under `/TOKEN` it speaks the v2 keys protocol etcd's discovery client uses, forwarded to
///   `/v2/keys/_etcd/registry/TOKEN` with etcd's status codes, JSON bodies and `X-Etcd-*`
///   headers passed through; `_`-prefixed keys are hidden from listings and from watches.
/// - A token of size N holds at most `DiscoveryRules.maxMemberKeys(size: N)` member keys of at
///   most `DiscoveryRules.maxValueBytes` each.
/// - A sweep deletes tokens created more than `maxTokenAge` ago.
public struct DiscoveryServer: Sendable {
    public let options: DiscoveryServerOptions
    let log: @Sendable (String) -> Void
    let registry: Registry
    let longPolls: LongPolls
    let newTokenRate: NewTokenRate
    let census: TokenCensus
    let tokenLocks = TokenLocks()
    /// The listening server, once `run` started it.
    private let http = NIOLockedValueBox<HTTPServer?>(nil)
    /// `BASE` of token URLs, known once the socket is bound (its port may be chosen then).
    private let base = NIOLockedValueBox<String?>(nil)

    /// `log` gets one line per request and per event (default: standard output). Throws when
    /// the etcd URL is not an http(s) URL.
    public init(options: DiscoveryServerOptions, log: @escaping @Sendable (String) -> Void = DiscoveryServer.printLine) throws {
        self.options = options
        self.log = log
        do {
            registry = Registry(client: try V2KeysClient(baseURL: options.etcdURL, timeout: options.backendTimeout,
                                                         maxConnections: options.maxLongPolls + options.backendSpareConnections))
        } catch {
            throw DiscoveryServerError(description: "backing etcd \(options.etcdURL): \(error.message)")
        }
        longPolls = LongPolls(total: options.maxLongPolls, perClient: options.maxLongPollsPerClient)
        newTokenRate = NewTokenRate(burst: options.newTokensBurst, perMinute: options.newTokensPerMinute)
        census = TokenCensus(cap: options.maxTokens)
    }

    @Sendable public static func printLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Serves until cancelled (or, with `handleSignals`, until SIGTERM/SIGINT). `onListening`
    /// gets the bound port once the socket listens (after the pidfile is written).
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let options = self.options
        guard options.baseURL != nil || DiscoveryServerOptions.isLoopback(options.host) else {
            throw DiscoveryServerError(description: "listening on \(options.host), beyond loopback, needs --base-url: the URL members reach the service at (token URLs are never made from a request's Host header)")
        }
        await probeBackend()
        let server = HTTPServer(limits: options.limits, log: log) { request in await self.respond(request) }
        http.withLockedValue { $0 = server }
        let port: Int
        do {
            port = try await server.start(host: options.host, port: options.port)
        } catch {
            await registry.client.shutdown()
            throw DiscoveryServerError(description: "cannot listen on \(options.host):\(options.port): \(error)")
        }
        if var configured = options.baseURL {
            while configured.hasSuffix("/") { configured.removeLast() }
            base.withLockedValue { $0 = configured }
        } else {
            let host = options.host.contains(":") ? "[\(options.host)]" : options.host
            base.withLockedValue { $0 = "http://\(host):\(port)" }
        }
        if let pidfile = options.pidfile {
            do {
                try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: pidfile), options: .atomic)
            } catch {
                log("cannot write pidfile \(pidfile): \(error)")
            }
        }
        defer {
            if let pidfile = options.pidfile { try? FileManager.default.removeItem(atPath: pidfile) }
        }
        log("muster discovery: listening on \(options.host):\(port), backing etcd \(options.etcdURL) (tokens under \(Registry.root)), pid \(getpid())")
        await onListening(port)
        let signals = options.handleSignals ? StopSignals() : nil
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sweepLoop() }
            if let signals {
                group.addTask {
                    if let signal = await signals.next() { self.log("muster discovery: signal \(signal), stopping") }
                }
            }
            _ = await group.next()
            group.cancelAll()
        }
        signals?.cancel()
        await server.close()
        await registry.client.shutdown()
        log("muster discovery: stopped")
    }

    /// Connections open now from the client `address` (by its `ClientKey`).
    func openConnections(from address: String) -> Int {
        http.withLockedValue { $0 }?.openConnections(from: ClientKey.of(address)) ?? 0
    }

    // MARK: Routing

    func respond(_ request: ServerRequest) async -> ServerReply {
        var path = request.path
        if path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        switch path {
        case "/new":
            guard request.method == "GET" else {
                return Reply.text(.methodNotAllowed, "method \(request.method) not allowed: GET /new?size=N\n", note: "refused: \(request.method) /new")
            }
            return await newToken(request)
        case "/health":
            return Reply.text(.ok, "ok\n", note: "ok")
        default:
            return await tokenRequest(request, path: path)
        }
    }

    // MARK: /new

    func newToken(_ request: ServerRequest) async -> ServerReply {
        let query = DiscoveryRules.decodeForm(request.query)
        guard let query, query.allSatisfy({ $0.name == "size" }) else {
            return Reply.text(.badRequest, "bad query: only ?size=N is accepted\n", note: "refused: only ?size=N is accepted")
        }
        let sizeText = query.first?.value
        guard let size = DiscoveryRules.parseSize(sizeText) else {
            return Reply.text(.badRequest, "invalid size '\(sizeText ?? "")': use an integer \(DiscoveryRules.sizes.lowerBound)-\(DiscoveryRules.sizes.upperBound)\n",
                              note: "refused: size \(sizeText ?? "")")
        }
        guard let base = base.withLockedValue({ $0 }) else {
            return Reply.text(.serviceUnavailable, "not listening yet\n", note: "no base URL yet")
        }
        if let wait = newTokenRate.take(request.client) {
            return ServerReply(status: .tooManyRequests,
                               headers: [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "\(wait)")],
                               body: ByteBuffer(string: "too many new tokens from your address (\(options.newTokensBurst) at once, then \(options.newTokensPerMinute) a minute); try again in \(wait) s\n"),
                               note: "refused: /new rate of \(request.client)")
        }
        guard census.admit() else {
            return ServerReply(status: .serviceUnavailable,
                               headers: [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "3600")],
                               body: ByteBuffer(string: "the service holds \(options.maxTokens) tokens, its cap; old ones expire at the next sweep\n"),
                               note: "refused: \(options.maxTokens) tokens held")
        }
        do {
            let token = try await registry.create(size: size)
            return Reply.text(.ok, base + "/" + token, note: "token \(token) size \(size)")
        } catch {
            census.giveBack()
            return Reply.text(.serviceUnavailable, "cannot make a token: \(error)\n", note: "cannot make a token: \(error)")
        }
    }

    // MARK: /TOKEN...

    func tokenRequest(_ request: ServerRequest, path: String) async -> ServerReply {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard let token = parts.first, DiscoveryRules.isValidToken(token) else {
            return Reply.etcdError(.notFound, code: 100, message: "Key not found", cause: "not a discovery token", note: "refused: not a token")
        }
        let rest = Array(parts.dropFirst())
        let method = request.method
        guard ["GET", "PUT", "DELETE", "POST"].contains(method) else {
            return Reply.etcdError(.methodNotAllowed, code: 209, message: "Invalid field", cause: "method \(method) not allowed",
                                   note: "refused: method \(method)")
        }
        guard let query = DiscoveryRules.decodeForm(request.query) else {
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field", cause: "malformed query string", note: "refused: malformed query")
        }
        if let problem = Self.checkParameters(query, method: method) {
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field", cause: problem, note: "refused: \(problem)")
        }
        let waiting = query.contains { $0.name == "wait" && $0.value == "true" }
        switch (method, rest) {
        case ("GET", []):
            return waiting ? await longPoll(token, [token], request: request, query: query, hideHidden: true)
                           : await forward("GET", [token], query: query, hideHidden: true)
        case ("GET", ["_config", "size"]):
            return waiting ? await longPoll(token, [token, "_config", "size"], request: request, query: query, hideHidden: false)
                           : await forward("GET", [token, "_config", "size"], query: query)
        case (_, let keys) where keys.first == "_config":
            return Reply.etcdError(.forbidden, code: 209, message: "Invalid field",
                                   cause: "_config is written only by GET /new (a token's size is fixed when it is made)",
                                   note: "refused: \(method) \(keys.joined(separator: "/"))")
        case _ where rest.count == 1 && DiscoveryRules.isValidMemberKey(rest[0]):
            let key = rest[0]
            switch method {
            case "GET":
                return waiting ? await longPoll(token, [token, key], request: request, query: query, hideHidden: false)
                               : await forward("GET", [token, key], query: query)
            case "DELETE":
                return await forward("DELETE", [token, key], query: query)
            case "PUT":
                return await register(token, key, request: request, query: query)
            default:
                return Reply.etcdError(.methodNotAllowed, code: 209, message: "Invalid field", cause: "method \(method) not allowed on a member key",
                                       note: "refused: \(method) on a member key")
            }
        default:
            if method != "GET" && rest.isEmpty {
                return Reply.etcdError(.methodNotAllowed, code: 209, message: "Invalid field", cause: "method \(method) not allowed on a token",
                                       note: "refused: \(method) \(rest.joined(separator: "/"))")
            }
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field",
                                   cause: "keys under a token are member IDs (letters, digits, . _ -) and _config/size",
                                   note: "refused: \(method) \(rest.joined(separator: "/"))")
        }
    }

    /// `PUT /TOKEN/KEY value=...`: only on a token that exists (an unknown token gets etcd's own
    /// `100: Key not found` for its size key, never a stray directory), with a value of at most
    /// `maxValueBytes`, and while the token holds fewer than its limit of member keys. Count and
    /// write happen under the token's lock, so concurrent registrations cannot overshoot.
    func register(_ token: String, _ key: String, request: ServerRequest, query: [(name: String, value: String)]) async -> ServerReply {
        guard let value = Self.formValue(request.body) else {
            return Reply.etcdError(.badRequest, code: 210, message: "Invalid POST form", cause: "expected a form body value=...",
                                   note: "refused: body is not value=...")
        }
        guard value.utf8.count <= DiscoveryRules.maxValueBytes else {
            return Reply.etcdError(.payloadTooLarge, code: 209, message: "Invalid field",
                                   cause: "a member's value is name=peerURLs: at most \(DiscoveryRules.maxValueBytes) bytes",
                                   note: "refused: value of \(value.utf8.count) bytes")
        }
        return await tokenLocks.withLock(token) { () async -> ServerReply in
            let size: Int
            switch await lookUpSize(token) {
            case .failure(let failure): return failure.reply
            case .success(let found): size = found
            }
            let keys: [String]
            do throws(Registry.Failure) { keys = try await registry.memberKeys(token) } catch { return Self.reply(error) }
            let limit = DiscoveryRules.maxMemberKeys(size: size)
            if keys.count >= limit && !keys.contains(key) {
                return Reply.etcdError(.forbidden, code: 209, message: "Invalid field",
                                       cause: "token holds \(keys.count) member keys: at most \(limit) for a cluster of \(size)",
                                       note: "refused: token full (\(keys.count) of \(limit) member keys)")
            }
            return await forward("PUT", [token, key], query: query, form: [("value", value)])
        }
    }

    /// The token's size, or the answer that says why there is none.
    func lookUpSize(_ token: String) async -> Result<Int, ReplyFailure> {
        do {
            let (size, answer) = try await registry.size(token)
            guard let size else {
                return .failure(ReplyFailure(Reply.passing(answer, note: "refused: token has no size (etcd \(answer.status))")))
            }
            return .success(size)
        } catch {
            return .failure(ReplyFailure(Self.reply(error)))
        }
    }

    /// A long poll, within the caps: at most `maxLongPolls` in all (503 beyond) and
    /// `maxLongPolls(size:)` per token (429 beyond). Waits at most `waitTimeout`, then answers an
    /// empty 200. Events on hidden keys (`_config/...`: at most two per token, both written by
    /// `/new`) are skipped: the poll goes on from the next index.
    func longPoll(_ token: String, _ components: [String], request: ServerRequest, query: [(name: String, value: String)], hideHidden: Bool) async -> ServerReply {
        guard longPolls.hasRoom else { return Self.tooManyPolls(total: options.maxLongPolls) }
        let size: Int
        switch await lookUpSize(token) {
        case .failure(let failure): return failure.reply
        case .success(let found): size = found
        }
        let perToken = DiscoveryRules.maxLongPolls(size: size)
        let client = request.client
        switch longPolls.acquire(token, perToken: perToken, client: client) {
        case .total: return Self.tooManyPolls(total: options.maxLongPolls)
        case .client:
            return Reply.etcdError(.tooManyRequests, code: 300, message: "Raft Internal Error",
                                   cause: "\(options.maxLongPollsPerClient) long polls already wait from your address; try again later",
                                   note: "refused: \(options.maxLongPollsPerClient) long polls from \(client)", retryAfter: true)
        case .token:
            return Reply.etcdError(.tooManyRequests, code: 300, message: "Raft Internal Error",
                                   cause: "\(perToken) long polls already wait on this token (a cluster of \(size)); try again later",
                                   note: "refused: \(perToken) long polls on the token", retryAfter: true)
        case nil: break
        }
        defer { longPolls.release(token, client: client) }
        var waitIndex = query.first { $0.name == "waitIndex" }.flatMap { UInt64($0.value) }
        let recursive = query.contains { $0.name == "recursive" && $0.value == "true" }
        let started = ContinuousClock.now
        let bound = Duration.milliseconds(Int64(options.waitTimeout * 1000))
        var skipped = 0
        while true {
            let left = bound - (ContinuousClock.now - started)
            let seconds = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
            guard seconds > 0.001, skipped < 8 else { break }
            let answer: V2KeysAnswer?
            do {
                answer = try await registry.client.wait(Registry.key(components), waitIndex: waitIndex,
                                                        recursive: recursive, timeout: seconds)
            } catch {
                return Reply.unavailable(error)
            }
            guard let answer else { break }
            if answer.status == 404 && !answer.isV2JSON { return Reply.noV2() }
            if hideHidden, answer.status == 200, let event = WatchEvent(answer.body), event.isHidden(below: Registry.key([token])) {
                skipped += 1
                waitIndex = event.modifiedIndex + 1
                continue
            }
            let waited = Double((ContinuousClock.now - started).components.seconds)
            return Reply.passing(answer, note: Self.describe(answer, waited: waited) + (skipped > 0 ? " (\(skipped) hidden event(s) skipped)" : ""))
        }
        // etcd's v2 client reads an empty 200 as "nothing yet" and asks again.
        return ServerReply(status: .ok, headers: [("Content-Type", "application/json")],
                           note: "long poll: nothing within \(Int(options.waitTimeout)) s, empty answer")
    }

    static func tooManyPolls(total: Int) -> ServerReply {
        Reply.etcdError(.serviceUnavailable, code: 300, message: "Raft Internal Error",
                        cause: "\(total) long polls already wait on this service; try again later",
                        note: "refused: \(total) long polls in all", retryAfter: true)
    }

    /// Forwards one request to the backing etcd and answers with etcd's status, headers and body.
    func forward(_ method: String, _ components: [String], query: [(name: String, value: String)],
                 form: [(name: String, value: String)]? = nil, hideHidden: Bool = false) async -> ServerReply {
        let answer: V2KeysAnswer
        do {
            answer = try await registry.client.send(method, Registry.key(components), query: query, form: form)
        } catch {
            return Reply.unavailable(error)
        }
        if answer.status == 404 && !answer.isV2JSON { return Reply.noV2() }
        var body = answer.body
        if hideHidden, answer.status == 200, let filtered = Self.hidingHidden(answer.body) {
            body = filtered
        }
        return Reply.passing(answer, body: body, note: Self.describe(answer, waited: nil))
    }

    static func reply(_ failure: Registry.Failure) -> ServerReply {
        switch failure {
        case .unavailable(let error): return Reply.unavailable(error)
        case .backend(let status, let text):
            if status == 404 && text.contains("v2 keys API") { return Reply.noV2() }
            return Reply.etcdError(.serviceUnavailable, code: 300, message: "Raft Internal Error",
                                   cause: "backing etcd answered \(status)", note: "\(failure)")
        }
    }

    /// The `value` of a form body, nil when the body is not a form with exactly `value` (etcd's
    /// client sends nothing else for a discovery key). The body is already bounded by the server.
    static func formValue(_ body: ByteBuffer) -> String? {
        let text = String(buffer: body)
        guard let pairs = DiscoveryRules.decodeForm(text), pairs.count == 1, pairs[0].name == "value" else { return nil }
        return pairs[0].value
    }

    static func checkParameters(_ query: [(name: String, value: String)], method: String) -> String? {
        let allowed = DiscoveryRules.forwardedParameters[method] ?? []
        for (name, value) in query {
            guard allowed.contains(name) else { return "parameter '\(name)' not accepted on \(method)" }
            switch name {
            case "wait", "recursive", "sorted", "quorum", "prevExist", "noValueOnSuccess":
                guard value == "true" || value == "false" else { return "\(name) must be true or false" }
            case "waitIndex", "prevIndex":
                guard !value.isEmpty, value.utf8.count <= 19, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                    return "\(name) must be a decimal index"
                }
            default:
                break
            }
        }
        return nil
    }

    /// A listing without `_`-prefixed children (at any depth), or nil when nothing was hidden.
    /// etcd's own v2 store already hides them; this keeps the promise whatever the backend.
    static func hidingHidden(_ body: Data) -> Data? {
        guard var object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let node = object["node"] as? [String: Any] else { return nil }
        var removed = false
        func filter(_ node: [String: Any]) -> [String: Any] {
            guard let children = node["nodes"] as? [[String: Any]] else { return node }
            var copy = node
            copy["nodes"] = children.compactMap { child -> [String: Any]? in
                let name = (child["key"] as? String)?.split(separator: "/").last ?? ""
                if name.hasPrefix("_") { removed = true; return nil }
                return filter(child)
            }
            return copy
        }
        object["node"] = filter(node)
        guard removed else { return nil }
        return try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
    }

    static func describe(_ answer: V2KeysAnswer, waited: TimeInterval?) -> String {
        var text = "etcd \(answer.status)"
        if let object = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any] {
            if let code = object["errorCode"] as? Int { text += " \(code): \(object["message"] as? String ?? "")" }
            if let action = object["action"] as? String { text += " \(action)" }
            if let node = object["node"] as? [String: Any] {
                if let key = node["key"] as? String { text += " \(key)" }
                if let nodes = node["nodes"] as? [Any] { text += " (\(nodes.count) keys)" }
            }
        }
        if let waited { text += String(format: " after %.1f s", waited) }
        return text
    }

    // MARK: sweep and start-up

    func sweepLoop() async {
        while !Task.isCancelled {
            do {
                census.listingStarts()
                let result = try await registry.sweep(maxAge: options.maxTokenAge)
                census.recount(kept: result.kept + result.undated.count)
                if !result.dropped.isEmpty || !result.undated.isEmpty {
                    log("sweep: dropped \(result.dropped.count) token(s) older than \(Self.age(options.maxTokenAge))\(result.dropped.isEmpty ? "" : ": " + result.dropped.joined(separator: " ")), kept \(result.kept)\(result.undated.isEmpty ? "" : ", \(result.undated.count) without _config/created left alone")")
                }
            } catch {
                if Task.isCancelled { return }
                log("sweep: \(error)")
            }
            do { try await Task.sleep(nanoseconds: UInt64(max(options.sweepInterval, 1) * 1_000_000_000)) } catch { return }
        }
    }

    /// Says plainly at start when the backing etcd is missing or lacks the v2 API (the service
    /// still starts: the etcd may come up later).
    func probeBackend() async {
        do {
            let answer = try await registry.client.get(Registry.root)
            if answer.status == 404 && !answer.isV2JSON {
                log("warning: backing etcd \(options.etcdURL) does not serve the v2 keys API: start it with --enable-v2 (enable-v2: true)")
            }
        } catch {
            log("warning: backing etcd \(options.etcdURL): \(error.message)")
        }
    }

    static func age(_ seconds: TimeInterval) -> String {
        seconds >= 86400 && seconds.truncatingRemainder(dividingBy: 86400) == 0 ? "\(Int(seconds / 86400)) days" : "\(Int(seconds)) s"
    }
}

/// A reply that ends a request early, as an error value.
struct ReplyFailure: Error {
    let reply: ServerReply
    init(_ reply: ServerReply) { self.reply = reply }
}

/// The event of a v2 watch answer: its key and index.
struct WatchEvent {
    var key: String
    var modifiedIndex: UInt64

    init?(_ body: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let node = object["node"] as? [String: Any], let key = node["key"] as? String else { return nil }
        self.key = key
        modifiedIndex = (node["modifiedIndex"] as? NSNumber)?.uint64Value ?? 0
    }

    /// A component below `directory` starts with `_` (`/_etcd/registry/T/_config/created`).
    func isHidden(below directory: String) -> Bool {
        guard key.hasPrefix(directory + "/") else { return false }
        return key.dropFirst(directory.count + 1).split(separator: "/").contains { $0.hasPrefix("_") }
    }
}

/// One lock per token, for the registrations that count then write: waiters queue in order.
/// A holder's work is bounded (two short calls to the backing etcd), so waits are too.
actor TokenLocks {
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func withLock<T: Sendable>(_ token: String, _ body: @Sendable () async -> T) async -> T {
        await lock(token)
        let result = await body()
        unlock(token)
        return result
    }

    private func lock(_ token: String) async {
        if waiters[token] == nil {
            waiters[token] = []
            return
        }
        await withCheckedContinuation { waiters[token]!.append($0) }
    }

    private func unlock(_ token: String) {
        guard var queue = waiters[token] else { return }
        if queue.isEmpty {
            waiters[token] = nil
        } else {
            let next = queue.removeFirst()
            waiters[token] = queue
            next.resume()
        }
    }
}

/// SIGTERM and SIGINT, as an async wait (the signals are ignored by the default handlers
/// while this exists).
final class StopSignals: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private let stream: AsyncStream<Int32>

    init() {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    func next() async -> Int32? {
        for await number in stream { return number }
        return nil
    }

    func cancel() { for source in sources { source.cancel() } }
}
