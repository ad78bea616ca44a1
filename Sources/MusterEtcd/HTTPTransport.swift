import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// Why an exchange ended without a whole answer, when the cause is the exchange's own bounds
/// (NIO's and NIOSSL's errors are passed on as they are: `HTTP.describe` words both).
package enum HTTPTransportError: Error, Sendable, Equatable {
    /// The request's deadline passed (before the answer's head, or before its last byte when
    /// the deadline covers the body).
    case deadlineExceeded
    /// No TCP connection within the connect timeout.
    case connectTimeout
    /// Nothing came for the read timeout while the client was asking for more (a stalled server
    /// or body; a reader that holds back, as a slow disk does, stops the clock).
    case readTimeout
    /// The connection closed before the answer was complete.
    case connectionClosed
    /// The task asking was cancelled; the connection was closed.
    case cancelled
    /// The body went past the caller's cap.
    case answerTooLarge(limit: Int)
    /// Not a URL this client speaks to.
    case badURL
}

/// A small HTTP/1.1 client on SwiftNIO: one TCP (or TLS) connection per request, `Connection:
/// close`, closed when the exchange ends however it ends. No redirect is followed (a 3xx is an
/// answer like any other), no request is retried, nothing is pooled.
///
/// Why one connection per request: every caller talks to an etcd member on loopback, a sandbox
/// bridge or an SSH tunnel, a few requests a second at most; a connect there costs a fraction of
/// a millisecond (a TLS handshake a few), and there is then no idle connection to expire, no
/// half-dead pooled socket to retry on, and cancellation is simply closing the channel.
///
/// Bounds: `connectTimeout` for TCP; `deadline` for the exchange (until the answer's head, or
/// to its last byte with `deadlineCoversBody`); `readTimeout` for any silence on the wire once
/// connected (a stalled body). Cancelling the calling task closes the connection, also while it
/// is still being made.
package enum HTTPTransport {
    package struct Request: Sendable {
        package var method: HTTPMethod
        package var url: String
        package var headers: [(name: String, value: String)] = []
        package var body: ByteBuffer?

        package init(method: HTTPMethod, url: String, headers: [(name: String, value: String)] = [], body: ByteBuffer? = nil) {
            self.method = method
            self.url = url
            self.headers = headers
            self.body = body
        }
    }

    package struct Limits: Sendable {
        package var connectTimeout: TimeAmount
        package var deadline: NIODeadline?
        package var deadlineCoversBody: Bool
        package var readTimeout: TimeAmount?

        package init(connectTimeout: TimeAmount, deadline: NIODeadline?, deadlineCoversBody: Bool, readTimeout: TimeAmount?) {
            self.connectTimeout = connectTimeout
            self.deadline = deadline
            self.deadlineCoversBody = deadlineCoversBody
            self.readTimeout = readTimeout
        }
    }

    /// Where a URL points: scheme, host (brackets of an IPv6 literal removed), port, and the
    /// request target (`/path?query`, escaping kept as written).
    package struct Target: Sendable, Equatable {
        package var isTLS: Bool
        package var host: String
        package var port: Int
        package var requestTarget: String

        package init?(_ urlString: String) {
            guard let components = URLComponents(string: urlString),
                  let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  var host = components.host, !host.isEmpty else { return nil }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            isTLS = scheme == "https"
            self.host = host
            let port = components.port ?? (isTLS ? 443 : 80)
            guard (1...65535).contains(port) else { return nil }
            self.port = port
            let path = components.percentEncodedPath
            requestTarget = (path.isEmpty ? "/" : path) + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
        }

        /// The `Host` header: an IPv6 literal in brackets, the port unless the scheme's default.
        package var hostHeader: String {
            let name = host.contains(":") ? "[\(host)]" : host
            return port == (isTLS ? 443 : 80) ? name : "\(name):\(port)"
        }

        /// Whether `host` is an IP literal: then no SNI is sent and NIOSSL checks the
        /// certificate's IP SANs against the address connected to (the URL's host).
        var hostIsIPLiteral: Bool {
            var v4 = in_addr(), v6 = in6_addr()
            return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        }
    }

    /// One answer's body, read chunk by chunk as the server sends it (the channel reads on only
    /// as chunks are taken: a slow reader slows the server down instead of filling memory).
    package struct Body {
        fileprivate var iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        fileprivate var ended = false
        fileprivate let exchange: ExchangeState

        /// The next chunk, or nil once the whole body is in.
        package mutating func next() async throws -> ByteBuffer? {
            while !ended {
                let part: HTTPClientResponsePart?
                do { part = try await iterator.next() } catch { throw exchange.explain(error) }
                guard let part else { throw exchange.explain(nil) }
                switch part {
                case .head: continue
                case .body(let buffer): if buffer.readableBytes > 0 { return buffer }
                case .end: ended = true
                }
            }
            return nil
        }

        /// The whole body; more than `limit` bytes is `answerTooLarge`.
        package mutating func collect(upTo limit: Int) async throws -> ByteBuffer {
            var all = ByteBuffer()
            while var chunk = try await next() {
                guard all.readableBytes + chunk.readableBytes <= limit else {
                    throw HTTPTransportError.answerTooLarge(limit: limit)
                }
                all.writeBuffer(&chunk)
            }
            return all
        }
    }

    /// Connects, sends `request`, waits for the answer's head and hands it with the body to
    /// `handle`; the connection is closed when `handle` returns or throws. Errors: an
    /// `HTTPTransportError`, or NIO's (a refused connect: `NIOConnectionError`) and NIOSSL's
    /// (handshake, hostname) as they came.
    package static func exchange<Result: Sendable>(
        _ request: Request, tls: NIOSSLContext?, limits: Limits,
        _ handle: (HTTPResponseHead, inout Body) async throws -> Result
    ) async throws -> Result {
        guard let target = Target(request.url), !target.isTLS || tls != nil else { throw HTTPTransportError.badURL }
        if Task.isCancelled { throw HTTPTransportError.cancelled }
        let exchange = ExchangeState()
        var connectTimeout = limits.connectTimeout
        if let deadline = limits.deadline {
            let left = deadline - .now()
            guard left > .zero else { throw HTTPTransportError.deadlineExceeded }
            connectTimeout = min(connectTimeout, left)
        }
        let serverName = target.isTLS && !target.hostIsIPLiteral ? target.host : nil
        let readTimeout = limits.readTimeout
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            // Cancellable while it connects: the channel is known before its connect starts, and
            // a cancellation closes it (the connect would otherwise run to its timeout).
            channel = try await withTaskCancellationHandler {
                try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(connectTimeout)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: target.host, port: target.port) { channel in
                        exchange.attach(channel)
                        return channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            if target.isTLS, let tls {
                                try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                            }
                            try pipeline.addHTTPClientHandlers()
                            try pipeline.addHandler(Watchdog(exchange, readTimeout: readTimeout))
                            return try NIOAsyncChannel(
                                wrappingChannelSynchronously: channel,
                                configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8)))
                        }
                    }
            } onCancel: {
                exchange.fail(.cancelled)
            }
        } catch {
            if Task.isCancelled { throw HTTPTransportError.cancelled }
            if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                if let deadline = limits.deadline, deadline <= .now() { throw HTTPTransportError.deadlineExceeded }
                throw HTTPTransportError.connectTimeout
            }
            throw error
        }
        let timer = limits.deadline.map { deadline in
            channel.channel.eventLoop.scheduleTask(deadline: deadline) { exchange.fail(.deadlineExceeded) }
        }
        defer { timer?.cancel() }

        var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: target.requestTarget)
        head.headers.add(name: "Host", value: target.hostHeader)
        head.headers.add(name: "User-Agent", value: "muster")
        head.headers.add(name: "Connection", value: "close")
        for header in request.headers { head.headers.add(name: header.name, value: header.value) }
        if let body = request.body {
            head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        } else if [.POST, .PUT, .PATCH].contains(request.method) {
            head.headers.add(name: "Content-Length", value: "0")
        }
        let requestHead = head
        return try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                    var parts: [HTTPClientRequestPart] = [.head(requestHead)]
                    if let body = request.body { parts.append(.body(.byteBuffer(body))) }
                    parts.append(.end(nil))
                    do { try await outbound.write(contentsOf: parts) } catch { throw exchange.explain(error) }
                    var iterator = inbound.makeAsyncIterator()
                    var answerHead: HTTPResponseHead?
                    while answerHead == nil {
                        let part: HTTPClientResponsePart?
                        do { part = try await iterator.next() } catch { throw exchange.explain(error) }
                        guard let part else { throw exchange.explain(nil) }
                        // Informational answers (1xx) precede the real one.
                        if case .head(let received) = part, received.status.code >= 200 || received.status.code == 101 {
                            answerHead = received
                        }
                    }
                    if !limits.deadlineCoversBody { timer?.cancel() }
                    var body = Body(iterator: iterator, exchange: exchange)
                    return try await handle(answerHead!, &body)
            }
        } onCancel: {
            exchange.fail(.cancelled)
        }
    }
}

/// What ended one exchange early, shared by the task asking and the channel's event loop: the
/// first bound that ran out (or the cancellation), and the first error the pipeline saw.
final class ExchangeState: Sendable {
    private struct State {
        var channel: (any Channel)?
        var failure: HTTPTransportError?
        var earlierError: (any Error)?
    }
    private let state = NIOLockedValueBox(State())

    var failure: HTTPTransportError? { state.withLockedValue { $0.failure } }

    func attach(_ channel: any Channel) {
        let failed = state.withLockedValue { state -> Bool in
            state.channel = channel
            return state.failure != nil
        }
        if failed { channel.close(promise: nil) }
    }

    /// Records why the exchange ends (the first reason wins) and closes the connection.
    func fail(_ reason: HTTPTransportError) {
        let channel = state.withLockedValue { state -> (any Channel)? in
            if state.failure == nil { state.failure = reason }
            return state.channel
        }
        channel?.close(promise: nil)
    }

    /// What to throw for a read or write that failed with `error` (nil: the answer ended
    /// early): the bound that ran out or the cancellation, else the pipeline's first error
    /// (a TLS handshake's), else the error itself, a closed channel saying the connection was lost.
    func explain(_ error: (any Error)?) -> any Error {
        let (failure, earlier) = state.withLockedValue { ($0.failure, $0.earlierError) }
        if let failure { return failure }
        guard let error = earlier ?? error else { return HTTPTransportError.connectionClosed }
        if let channel = error as? ChannelError,
           [.ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed].contains(channel) {
            return HTTPTransportError.connectionClosed
        }
        // The decoder's word for a close inside an answer framed by its length or chunks.
        if let parser = error as? HTTPParserError, parser == .invalidEOFState { return HTTPTransportError.connectionClosed }
        return error
    }

    func saw(_ error: any Error) {
        state.withLockedValue { state in
            if state.earlierError == nil { state.earlierError = error }
        }
    }
}

/// Runs the read timeout and remembers the pipeline's first error (a TLS handshake's is more
/// telling than the closed channel a later write then meets). A TLS peer closing without
/// close_notify is no error by itself: an answer framed by its length or by chunks is complete or
/// not regardless, and the decoder says which.
///
/// The read timeout counts only while the client asks for more: from a read the reader lets
/// through to the data that answers it. A reader that holds back (the async channel stops
/// asking while its buffer is full: a snapshot written to a slow disk) is not a silent server.
/// An idle timer on reads alone said "timed out" of a member that was fine.
private final class Watchdog: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart
    private let exchange: ExchangeState
    private let readTimeout: TimeAmount?
    private var waiting: Scheduled<Void>?

    init(_ exchange: ExchangeState, readTimeout: TimeAmount?) {
        self.exchange = exchange
        self.readTimeout = readTimeout
    }

    func read(context: ChannelHandlerContext) {
        if let readTimeout, waiting == nil {
            let exchange = self.exchange
            waiting = context.eventLoop.scheduleTask(in: readTimeout) { exchange.fail(.readTimeout) }
        }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        stopWaiting()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopWaiting()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { stopWaiting() }

    private func stopWaiting() {
        waiting?.cancel()
        waiting = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let ssl = error as? NIOSSLError, case .uncleanShutdown = ssl { return }
        exchange.saw(error)
        context.fireErrorCaught(error)
    }
}
