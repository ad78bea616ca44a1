import Foundation
import Hummingbird

/// How `muster discovery serve` runs.
public struct DiscoveryServerOptions: Sendable {
    /// Address to listen on (an IP, or `0.0.0.0`), and port (0: any free port, see `onListening`).
    public var host: String
    public var port: Int
    /// The backing etcd's client URL; it must serve the v2 keys API (`--enable-v2`).
    public var etcdURL: String
    /// The start of every token URL `/new` hands out (`BASE/TOKEN`). Nil: `http://` plus the
    /// request's `Host` header (what the asker used to reach the service).
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
    /// Stop on SIGTERM/SIGINT (the CLI). In-process users (tests) stop it by cancelling `run`.
    public var handleSignals = false

    public init(host: String, port: Int, etcdURL: String, baseURL: String? = nil, pidfile: String? = nil) {
        self.host = host
        self.port = port
        self.etcdURL = etcdURL
        self.baseURL = baseURL
        self.pidfile = pidfile
    }
}

/// A discovery.etcd.io-compatible service backed by a real etcd's v2 keys API.
///
/// - `GET /new?size=N` (N 1-99, default 3) makes a token, writes `_config/size` (and
///   `_config/created`) under `/_etcd/registry/TOKEN` in the backing etcd and answers
///   `BASE/TOKEN` as text/plain.
/// - Under `/TOKEN` it speaks the v2 keys protocol etcd's discovery client uses, forwarded to
///   `/v2/keys/_etcd/registry/TOKEN` with etcd's status codes, JSON bodies and `X-Etcd-*`
///   headers passed through; `_`-prefixed keys are hidden from listings.
/// - A sweep deletes tokens created more than `maxTokenAge` ago.
public struct DiscoveryServer: Sendable {
    public let options: DiscoveryServerOptions
    let log: @Sendable (String) -> Void
    let registry: Registry

    /// `log` gets one line per request and per event (default: standard output).
    public init(options: DiscoveryServerOptions, log: @escaping @Sendable (String) -> Void = DiscoveryServer.printLine) {
        self.options = options
        self.log = log
        registry = Registry(backend: RegistryBackend(etcdURL: options.etcdURL, timeout: options.backendTimeout))
    }

    @Sendable public static func printLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Serves until cancelled (or, with `handleSignals`, until SIGTERM/SIGINT). `onListening`
    /// gets the bound port once the socket listens (after the pidfile is written).
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router(context: DiscoveryContext.self)
        router.add(middleware: RequestLog(log: log))
        router.get("/new") { request, context in try await self.newToken(request, context) }
        router.get("/health") { _, context in
            context.note.set("ok")
            return Reply.text(.ok, "ok\n")
        }
        for method in [HTTPRequest.Method.get, .put, .delete, .post] {
            router.on("/{token}", method: method) { request, context in
                try await self.tokenRequest(request, context, rest: [])
            }
            router.on("/{token}/**", method: method) { request, context in
                try await self.tokenRequest(request, context, rest: context.parameters.getCatchAll())
            }
        }
        let options = self.options
        let log = self.log
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port),
                                                    serverName: "muster-discovery"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.port
                if let pidfile = options.pidfile {
                    do {
                        try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: pidfile), options: .atomic)
                    } catch {
                        log("cannot write pidfile \(pidfile): \(error)")
                    }
                }
                log("muster discovery: listening on \(options.host):\(port), backing etcd \(options.etcdURL) (tokens under \(RegistryBackend.registry)), pid \(getpid())")
                await onListening(port)
            })
        await probeBackend()
        defer {
            if let pidfile = options.pidfile { try? FileManager.default.removeItem(atPath: pidfile) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                if options.handleSignals { try await app.runService() } else { try await app.run() }
            }
            group.addTask { await self.sweepLoop() }
            _ = try await group.next()
            group.cancelAll()
        }
        log("muster discovery: stopped")
    }

    // MARK: /new

    func newToken(_ request: Request, _ context: DiscoveryContext) async throws -> Response {
        let query = DiscoveryRules.decodeForm(request.uri.query ?? "")
        guard let query, query.allSatisfy({ $0.name == "size" }) else {
            context.note.set("refused: only ?size=N is accepted")
            return Reply.text(.badRequest, "bad query: only ?size=N is accepted\n")
        }
        let sizeText = query.first?.value
        guard let size = DiscoveryRules.parseSize(sizeText) else {
            context.note.set("refused: size \(sizeText ?? "")")
            return Reply.text(.badRequest, "invalid size '\(sizeText ?? "")': use an integer \(DiscoveryRules.sizes.lowerBound)-\(DiscoveryRules.sizes.upperBound)\n")
        }
        guard let base = baseURL(for: request) else {
            context.note.set("refused: unusable Host header")
            return Reply.text(.badRequest, "no usable Host header (start the service with --base-url)\n")
        }
        do {
            let token = try await registry.create(size: size)
            context.note.set("token \(token) size \(size)")
            return Reply.text(.ok, base + "/" + token)
        } catch {
            context.note.set("cannot make a token: \(error)")
            return Reply.text(.serviceUnavailable, "cannot make a token: \(error)\n")
        }
    }

    func baseURL(for request: Request) -> String? {
        if var base = options.baseURL {
            while base.hasSuffix("/") { base.removeLast() }
            return base
        }
        if let host = request.head.authority {
            let allowed = host.utf8.allSatisfy { byte in
                (48...57).contains(byte) || (97...122).contains(byte) || (65...90).contains(byte)
                    || [UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]")].contains(byte)
            }
            return allowed && !host.isEmpty && host.utf8.count <= 255 ? "http://" + host : nil
        }
        let host = options.host.contains(":") ? "[\(options.host)]" : options.host
        return "http://\(host):\(options.port)"
    }

    // MARK: /TOKEN...

    func tokenRequest(_ request: Request, _ context: DiscoveryContext, rest: [Substring]) async throws -> Response {
        guard let token = context.parameters.get("token"), DiscoveryRules.isValidToken(token) else {
            context.note.set("refused: not a token")
            return Reply.etcdError(.notFound, code: 100, message: "Key not found", cause: "not a discovery token")
        }
        let method = request.method.rawValue
        guard let query = DiscoveryRules.decodeForm(request.uri.query ?? "") else {
            context.note.set("refused: malformed query")
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field", cause: "malformed query string")
        }
        if let problem = Self.checkParameters(query, method: method) {
            context.note.set("refused: \(problem)")
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field", cause: problem)
        }
        let waiting = query.contains { $0.name == "wait" && $0.value == "true" }
        switch (method, rest.map(String.init)) {
        case ("GET", []):
            return try await forward(context, "GET", [token], query: query, wait: waiting, hideHidden: !waiting)
        case ("GET", ["_config", "size"]):
            return try await forward(context, "GET", [token, "_config", "size"], query: query, wait: waiting)
        case ("PUT", ["_config", "size"]):
            guard let value = try await formValue(request, context) else {
                return Reply.etcdError(.badRequest, code: 210, message: "Invalid POST form", cause: "expected a form body value=N")
            }
            guard DiscoveryRules.parseSize(value) != nil else {
                context.note.set("refused: size \(value)")
                return Reply.etcdError(.badRequest, code: 209, message: "Invalid field",
                                       cause: "size must be an integer \(DiscoveryRules.sizes.lowerBound)-\(DiscoveryRules.sizes.upperBound)")
            }
            return try await forward(context, "PUT", [token, "_config", "size"], query: query, form: [("value", value)])
        case _ where rest.count == 1 && DiscoveryRules.isValidMemberKey(rest[0]):
            let key = String(rest[0])
            switch method {
            case "GET":
                return try await forward(context, "GET", [token, key], query: query, wait: waiting)
            case "DELETE":
                return try await forward(context, "DELETE", [token, key], query: query)
            case "PUT":
                guard let value = try await formValue(request, context) else {
                    return Reply.etcdError(.badRequest, code: 210, message: "Invalid POST form", cause: "expected a form body value=...")
                }
                // Only tokens that exist take members: an unknown token gets etcd's own
                // `100: Key not found` for its size key, never a stray directory.
                let size = await backendCall(context, "GET", [token, "_config", "size"])
                switch size {
                case .response(let response):
                    return response
                case .answer(let answer) where answer.status != 200:
                    context.note.set("refused: token has no size (etcd \(answer.status))")
                    return Reply.passing(answer)
                case .answer:
                    return try await forward(context, "PUT", [token, key], query: query, form: [("value", value)])
                }
            default:
                context.note.set("refused: \(method) on a member key")
                return Reply.etcdError(.methodNotAllowed, code: 209, message: "Invalid field", cause: "method \(method) not allowed on a member key")
            }
        default:
            context.note.set("refused: \(method) \(rest.joined(separator: "/"))")
            if method != "GET" && rest.isEmpty {
                return Reply.etcdError(.methodNotAllowed, code: 209, message: "Invalid field", cause: "method \(method) not allowed on a token")
            }
            return Reply.etcdError(.badRequest, code: 209, message: "Invalid field",
                                   cause: "keys under a token are member IDs (letters, digits, . _ -) and _config/size")
        }
    }

    /// Forwards one request to the backing etcd and answers with etcd's status, headers and body.
    func forward(_ context: DiscoveryContext, _ method: String, _ components: [String],
                 query: [(name: String, value: String)], form: [(name: String, value: String)]? = nil,
                 wait: Bool = false, hideHidden: Bool = false) async throws -> Response {
        let timeout = wait ? options.waitTimeout : options.backendTimeout
        let started = Date()
        do {
            let answer = try await registry.backend.send(method, components, query: query, form: form, timeout: timeout)
            if answer.status == 404 && !answer.isV2JSON {
                context.note.set("backing etcd does not serve the v2 keys API")
                return Reply.etcdError(.badGateway, code: 300, message: "Raft Internal Error",
                                       cause: "the backing etcd does not serve the v2 keys API (it needs --enable-v2)")
            }
            var body = answer.body
            if hideHidden, answer.status == 200, let filtered = Self.hidingHidden(answer.body) {
                body = filtered
            }
            context.note.set(Self.describe(answer, waited: wait ? Date().timeIntervalSince(started) : nil))
            return Reply.passing(answer, body: body)
        } catch let error as BackendUnavailable where error.timedOut && wait {
            // etcd's v2 client reads an empty 200 as "nothing yet" and asks again.
            context.note.set("long poll: nothing within \(Int(options.waitTimeout)) s, empty answer")
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init())
        } catch let error as BackendUnavailable {
            context.note.set("backing etcd unavailable: \(error.reason)")
            return Reply.etcdError(.serviceUnavailable, code: 300, message: "Raft Internal Error",
                                   cause: "backing etcd unavailable: \(error.reason)")
        }
    }

    /// A backend call whose failure is already a response.
    func backendCall(_ context: DiscoveryContext, _ method: String, _ components: [String]) async -> BackendOutcome {
        do {
            let answer = try await registry.call(method, components)
            if answer.status == 404 && !answer.isV2JSON {
                context.note.set("backing etcd does not serve the v2 keys API")
                return .response(Reply.etcdError(.badGateway, code: 300, message: "Raft Internal Error",
                                                 cause: "the backing etcd does not serve the v2 keys API (it needs --enable-v2)"))
            }
            return .answer(answer)
        } catch {
            context.note.set("backing etcd unavailable: \(error)")
            return .response(Reply.etcdError(.serviceUnavailable, code: 300, message: "Raft Internal Error",
                                             cause: "backing etcd unavailable"))
        }
    }

    /// The `value` of a form body (bounded by `maxBodyBytes`), nil when the body is not a form
    /// with exactly `value` (etcd's client sends nothing else for a discovery key).
    func formValue(_ request: Request, _ context: DiscoveryContext) async throws -> String? {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > options.maxBodyBytes {
            throw HTTPError(.contentTooLarge, message: "body of \(length) bytes: at most \(options.maxBodyBytes)")
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: options.maxBodyBytes)
        } catch where "\(error)".contains("TooManyBytes") {
            throw HTTPError(.contentTooLarge, message: "body larger than \(options.maxBodyBytes) bytes")
        }
        let text = String(buffer: buffer)
        guard let pairs = DiscoveryRules.decodeForm(text), pairs.count == 1, pairs[0].name == "value" else {
            context.note.set("refused: body is not value=...")
            return nil
        }
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
                guard !value.isEmpty, value.utf8.count <= 20, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
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

    static func describe(_ answer: BackendAnswer, waited: TimeInterval?) -> String {
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
                let result = try await registry.sweep(maxAge: options.maxTokenAge)
                if !result.dropped.isEmpty || !result.undated.isEmpty {
                    log("sweep: dropped \(result.dropped.count) token(s) older than \(Self.age(options.maxTokenAge))\(result.dropped.isEmpty ? "" : ": " + result.dropped.joined(separator: " ")), kept \(result.kept)\(result.undated.isEmpty ? "" : ", \(result.undated.count) without _config/created left alone")")
                }
            } catch {
                log("sweep: \(error)")
            }
            do { try await Task.sleep(nanoseconds: UInt64(max(options.sweepInterval, 1) * 1_000_000_000)) } catch { return }
        }
    }

    /// Says plainly at start when the backing etcd is missing or lacks the v2 API (the service
    /// still starts: the etcd may come up later).
    func probeBackend() async {
        do {
            let answer = try await registry.call("GET", [])
            if answer.status == 404 && !answer.isV2JSON {
                log("warning: backing etcd \(options.etcdURL) does not serve the v2 keys API: start it with --enable-v2 (enable-v2: true)")
            }
        } catch {
            log("warning: \(error)")
        }
    }

    static func age(_ seconds: TimeInterval) -> String {
        seconds >= 86400 && seconds.truncatingRemainder(dividingBy: 86400) == 0 ? "\(Int(seconds / 86400)) days" : "\(Int(seconds)) s"
    }
}

/// A backend answer, or the response that already says why there is none.
enum BackendOutcome {
    case answer(BackendAnswer)
    case response(Response)
}
