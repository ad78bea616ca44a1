import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One request as the service sees it: read whole (the body bounded) before any handler runs.
struct ServerRequest: Sendable {
    var method: String
    /// The target as sent (`/TOKEN/KEY?query`).
    var target: String
    var path: String
    var query: String
    var headers: HTTPHeaders
    var body: ByteBuffer
    var remote: String
    /// Who quotas count it against (`ClientKey` of `remote`), worked out once per connection.
    var client: String
}

/// One answer, and the note for its log line.
struct ServerReply: Sendable {
    var status: HTTPResponseStatus
    var headers: [(name: String, value: String)]
    var body: ByteBuffer
    var note: String

    init(status: HTTPResponseStatus, headers: [(name: String, value: String)] = [], body: ByteBuffer = ByteBuffer(), note: String = "") {
        self.status = status
        self.headers = headers
        self.body = body
        self.note = note
    }
}

/// What a slow, idle or greedy client may cost the server. Every bound applies before a
/// request reaches a handler (and so before any token is looked up).
struct ServerLimits: Sendable {
    /// Open connections at once; one more is answered 503 and closed at once. One client (see
    /// `ClientKey`) may hold at most `maxConnectionsPerClient` of them, so it cannot take them all.
    var maxConnections = 512
    var maxConnectionsPerClient = 32
    /// A new connection that sends nothing within this is closed (silent sockets held open to
    /// fill the connection table).
    var firstByteTimeout: TimeAmount = .seconds(5)
    /// A kept-alive connection with no request in flight is closed after this.
    var idleTimeout: TimeAmount = .seconds(60)
    /// From a request's first byte to the end of its head.
    var headerTimeout: TimeAmount = .seconds(10)
    /// From the end of the head to the last byte of the body.
    var bodyTimeout: TimeAmount = .seconds(10)
    /// Larger bodies get 413 (announced by Content-Length: before a byte of it is read).
    var maxBodyBytes = 64 * 1024
}

/// A small HTTP/1.1 server on SwiftNIO: one request at a time per connection (pipelined
/// requests wait their turn), keep-alive, bounded heads, bodies, timeouts and connections.
/// `respond` runs in a task of its own per request; it is cancelled when the client goes away.
final class HTTPServer: Sendable {
    let limits: ServerLimits
    let log: @Sendable (String) -> Void
    let respond: @Sendable (ServerRequest) async -> ServerReply
    private let connections = NIOLockedValueBox((total: 0, perClient: [String: Int]()))
    private let children: NIOLockedValueBox<[ObjectIdentifier: Channel]> = NIOLockedValueBox([:])
    private let channel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)

    init(limits: ServerLimits, log: @escaping @Sendable (String) -> Void,
         respond: @escaping @Sendable (ServerRequest) async -> ServerReply) {
        self.limits = limits
        self.log = log
        self.respond = respond
    }

    /// Binds `host:port` and returns the bound port; serving goes on until `close()`.
    func start(host: String, port: Int, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> Int {
        let server = self
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try server.initialize(channel) }
            }
        let bound = try await bootstrap.bind(host: host, port: port).get()
        channel.withLockedValue { $0 = bound }
        return bound.localAddress?.port ?? port
    }

    /// Connections open now from `client` (a `ClientKey`).
    func openConnections(from client: String) -> Int {
        connections.withLockedValue { $0.perClient[client, default: 0] }
    }

    /// Stops listening and closes every connection (their handlers' tasks are cancelled).
    func close() async {
        guard let bound = channel.withLockedValue({ value -> Channel? in let c = value; value = nil; return c }) else { return }
        try? await bound.close()
        let open = children.withLockedValue { Array($0.values) }
        for child in open { try? await child.close() }
    }

    /// The pipeline of one accepted connection, or a 503 and a close past `maxConnections`.
    private func initialize(_ channel: Channel) throws {
        let remote = channel.remoteAddress?.ipAddress ?? "?"
        let client = ClientKey.of(remote)
        let refusal = connections.withLockedValue { open -> String? in
            guard open.total < limits.maxConnections else {
                return "too many connections (at most \(limits.maxConnections))"
            }
            guard open.perClient[client, default: 0] < limits.maxConnectionsPerClient else {
                return "too many connections from your address (at most \(limits.maxConnectionsPerClient))"
            }
            open.total += 1
            open.perClient[client, default: 0] += 1
            return nil
        }
        if let refusal {
            try channel.pipeline.syncOperations.addHandler(RawAnswer(Self.rawAnswer("503 Service Unavailable", refusal + "; try again later\n", retryAfter: true)))
            log("\(Self.now()) \(remote) - - -> 503 0 ms  refused: \(refusal)")
            return
        }
        let id = ObjectIdentifier(channel)
        children.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [connections, children] _ in
            connections.withLockedValue { open in
                open.total -= 1
                let left = open.perClient[client, default: 1] - 1
                open.perClient[client] = left > 0 ? left : nil
            }
            children.withLockedValue { $0[id] = nil }
        }
        let handler = ConnectionHandler(server: self, remote: remote, client: client)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ReadActivity(handler), position: .first)
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try sync.addHandler(HTTPServerPipelineHandler())
        try sync.addHandler(HTTPServerProtocolErrorHandler())
        try sync.addHandler(handler)
    }

    static func now() -> String { Date().formatted(.iso8601) }

    /// A whole answer as bytes, for connections whose HTTP pipeline is not (or no longer) usable.
    static func rawAnswer(_ status: String, _ text: String, retryAfter: Bool = false) -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(text.utf8.count)\r\n"
            + (retryAfter ? "Retry-After: 1\r\n" : "") + "Connection: close\r\n\r\n" + text
    }
}

/// Writes one fixed answer as soon as the connection is active, then closes it.
private final class RawAnswer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let text: String
    init(_ text: String) { self.text = text }

    private var sent = false

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    private func answer(_ context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        context.writeAndFlush(NIOAny(ByteBuffer(string: text)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Tells the connection handler that bytes arrived, before the decoder sees them: the first
/// byte of a request starts its header timeout.
private final class ReadActivity: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private weak var handler: ConnectionHandler?

    init(_ handler: ConnectionHandler) { self.handler = handler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        handler?.bytesArrived(context: context)
        context.fireChannelRead(data)
    }
}

/// One connection's requests: collects each (bounded), runs the server's `respond` in a task,
/// writes the answer, and keeps the connection's timers (idle, header, body).
private final class ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Phase {
        /// No request in flight: the idle timer runs.
        case idle
        /// Bytes of a head arrived: the header timer runs.
        case head
        /// The head is in, the body is being read: the body timer runs.
        case body(HTTPRequestHead, ByteBuffer, started: NIODeadline)
        /// A body larger than allowed got 413: the rest of it is read and dropped (a client still
        /// sending would otherwise see a reset instead of the answer), then the connection closes.
        case draining(left: Int)
        /// The handler runs (its own bounds apply: a long poll waits its bound).
        case handling
        case closed
    }

    private let server: HTTPServer
    private let remote: String
    private let client: String
    private var phase = Phase.idle
    private var timer: Scheduled<Void>?
    private var task: Task<Void, Never>?
    /// Bytes of a next request came while this one was handled (held back by the pipeline
    /// handler): its header timeout starts when the answer is out, not an idle timeout.
    private var pendingBytes = false
    private weak var context: ChannelHandlerContext?
    /// Below the HTTP codec: where raw bytes can be written (ReadActivity's context).
    private weak var rawContext: ChannelHandlerContext?

    init(server: HTTPServer, remote: String, client: String) {
        self.server = server
        self.remote = remote
        self.client = client
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm(server.limits.firstByteTimeout, context: context, reason: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        timer?.cancel()
        timer = nil
        task?.cancel()
        task = nil
        context.fireChannelInactive()
    }

    func bytesArrived(context: ChannelHandlerContext) {
        rawContext = context
        switch phase {
        case .idle:
            phase = .head
            arm(server.limits.headerTimeout, context: context, reason: "no complete request head within")
        case .handling:
            pendingBytes = true
        default:
            break
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if case .closed = phase { return }
            let limit = server.limits.maxBodyBytes
            if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
                refuseBody(head, context: context, note: "body of \(length) bytes: at most \(limit)")
                return
            }
            phase = .body(head, context.channel.allocator.buffer(capacity: 0), started: .now())
            arm(server.limits.bodyTimeout, context: context, reason: "request body not complete within")
            // curl (and libcurl-based clients) wait for this before a body of more than 1 KiB.
            if head.headers[canonicalForm: "Expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            if case .draining(let left) = phase {
                phase = .draining(left: left - chunk.readableBytes)
                if left - chunk.readableBytes < 0 { close(context) }
                return
            }
            guard case .body(let head, var body, let started) = phase else { return }
            guard body.readableBytes + chunk.readableBytes <= server.limits.maxBodyBytes else {
                refuseBody(head, context: context, note: "body larger than \(server.limits.maxBodyBytes) bytes")
                return
            }
            phase = .handling  // drop the buffer's reference before appending: no copy on write
            body.writeBuffer(&chunk)
            phase = .body(head, body, started: started)
        case .end:
            if case .draining = phase {
                close(context)
                return
            }
            guard case .body(let head, let body, let started) = phase else { return }
            phase = .handling
            timer?.cancel()
            timer = nil
            dispatch(head, body: body, started: started, context: context)
        }
    }

    private func dispatch(_ head: HTTPRequestHead, body: ByteBuffer, started: NIODeadline, context: ChannelHandlerContext) {
        let target = head.uri
        let question = target.firstIndex(of: "?")
        let request = ServerRequest(
            method: head.method.rawValue, target: target,
            path: question.map { String(target[..<$0]) } ?? target,
            query: question.map { String(target[target.index(after: $0)...]) } ?? "",
            headers: head.headers, body: body, remote: remote, client: client)
        let respond = server.respond
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let keepAlive = head.isKeepAlive
        let version = head.version
        task = Task {
            let reply = await respond(request)
            loop.execute {
                bound.value.finish(reply, version: version, keepAlive: keepAlive, method: request.method,
                                   target: request.target, started: started)
            }
        }
    }

    private func finish(_ reply: ServerReply, version: HTTPVersion, keepAlive: Bool, method: String,
                        target: String, started: NIODeadline) {
        task = nil
        logLine(method: method, target: target, status: reply.status, started: started, note: reply.note)
        guard case .handling = phase, let context else { return }
        write(reply, version: version, keepAlive: keepAlive, context: context)
    }

    private func close(_ context: ChannelHandlerContext) {
        phase = .closed
        timer?.cancel()
        timer = nil
        context.close(promise: nil)
    }

    private func write(_ reply: ServerReply, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext,
                       drain: Bool = false) {
        var headers = HTTPHeaders()
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "Content-Length", value: String(reply.body.readableBytes))
        headers.replaceOrAdd(name: "Server", value: "muster-discovery")
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: reply.status, headers: headers))), promise: nil)
        if reply.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(reply.body))), promise: nil) }
        // The next phase before the end goes out: writing it makes the pipeline handler hand
        // over a request it held back, at once, from inside this call.
        var closeWhenWritten = false
        if keepAlive && pendingBytes {
            pendingBytes = false
            phase = .head
            arm(server.limits.headerTimeout, context: context, reason: "no complete request head within")
        } else if keepAlive {
            phase = .idle
            arm(server.limits.idleTimeout, context: context, reason: nil)
        } else if drain {
            // At most a megabyte more, within the body timeout; then the connection closes.
            phase = .draining(left: 1 << 20)
            arm(server.limits.bodyTimeout, context: context, reason: nil)
        } else {
            phase = .closed
            timer?.cancel()
            timer = nil
            closeWhenWritten = true
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        if closeWhenWritten {
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
    }

    /// 413 at once (the handler never sees the request), then the rest is drained and dropped.
    private func refuseBody(_ head: HTTPRequestHead, context: ChannelHandlerContext, note: String) {
        timer?.cancel()
        let text = "request body too large: at most \(server.limits.maxBodyBytes) bytes\n"
        let reply = ServerReply(status: .payloadTooLarge, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                body: ByteBuffer(string: text), note: note)
        logLine(method: head.method.rawValue, target: head.uri, status: reply.status, started: .now(), note: note)
        phase = .handling
        write(reply, version: head.version, keepAlive: false, context: context, drain: true)
    }

    /// The phase's timer: on expiry an idle connection is just closed, a half-sent request
    /// gets 408 first.
    private func arm(_ amount: TimeAmount, context: ChannelHandlerContext, reason: String?) {
        timer?.cancel()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: amount) {
            bound.value.expire(amount, reason: reason)
        }
    }

    private func expire(_ amount: TimeAmount, reason: String?) {
        timer = nil
        guard let context else { return }
        switch phase {
        case .idle, .draining:
            close(context)
        case .head:
            // No head decoded yet: the answer goes out as raw bytes, below the HTTP codec.
            let why = "\(reason ?? "timed out") \(SecondsText.of(Double(amount.nanoseconds) / 1e9))"
            logLine(method: "-", target: "-", status: .requestTimeout, started: .now(), note: "cut: " + why)
            phase = .closed
            let channel = context.channel
            if let raw = rawContext {
                let promise = raw.eventLoop.makePromise(of: Void.self)
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                raw.writeAndFlush(NIOAny(ByteBuffer(string: HTTPServer.rawAnswer("408 Request Timeout", "request timeout: \(why)\n"))),
                                  promise: promise)
            } else {
                channel.close(promise: nil)
            }
        case .body(let head, _, _):
            let why = "\(reason ?? "timed out") \(SecondsText.of(Double(amount.nanoseconds) / 1e9))"
            let reply = ServerReply(status: .requestTimeout, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                    body: ByteBuffer(string: "request timeout: \(why)\n"), note: "cut: " + why)
            logLine(method: head.method.rawValue, target: head.uri, status: reply.status, started: .now(), note: reply.note)
            phase = .handling
            write(reply, version: head.version, keepAlive: false, context: context)
        case .handling, .closed:
            break
        }
    }

    private func logLine(method: String, target: String, status: HTTPResponseStatus, started: NIODeadline, note: String) {
        let milliseconds = max(0, (NIODeadline.now() - started).nanoseconds / 1_000_000)
        server.log("\(HTTPServer.now()) \(remote) \(method) \(TokenRedaction.redact(String(target.prefix(300)))) -> \(status.code) \(milliseconds) ms\(note.isEmpty ? "" : "  " + TokenRedaction.redact(note))")
    }
}

/// A token is a capability (whoever holds it can join or spoil that cluster's bootstrap): the
/// log keeps its first 8 characters, enough to follow one cluster's requests.
enum TokenRedaction {
    static func redact(_ text: String) -> String {
        var out = "", run = ""
        func flush() {
            out += run.count == 32 ? run.prefix(8) + "…" : run
            run = ""
        }
        for character in text {
            if character.isHexDigit && character.isASCII && !character.isUppercase { run.append(character) } else {
                flush()
                out.append(character)
            }
        }
        flush()
        return out
    }
}

enum SecondsText {
    static func of(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}
