import Foundation
import MusterTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP connection to the service that sends exactly the bytes a test gives (half a head, a
/// short body, a forged Host) and records what comes back. Every wait is bounded.
final class RawConnection: Sendable {
    private let channel: Channel
    private let collector: Collector

    private init(channel: Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// `from`: the local address to connect from (another loopback address plays another client).
    static func open(port: Int, host: String = "127.0.0.1", from: String? = nil) async throws -> RawConnection {
        let collector = Collector()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let from { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: from, port: 0)) }
        let channel = try await bootstrap
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(CollectHandler(collector)) }
            }
            .connect(host: host, port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// What the server sent so far.
    var received: String { collector.text }
    var isClosed: Bool { collector.closed }

    /// True once the server closed the connection, false if it is still open after `seconds`.
    func waitClosed(seconds: TimeInterval) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !collector.closed && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return collector.closed
    }

    /// Waits (bounded) until `received` holds a whole answer (head and `Content-Length` body).
    func waitAnswer(seconds: TimeInterval) async -> RawAnswer? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let answer = RawAnswer(collector.text) { return answer }
            if collector.closed { return RawAnswer(collector.text) }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return RawAnswer(collector.text)
    }

    func close() async {
        try? await channel.close()
    }

    /// One request with `Connection: close`, its whole answer.
    static func request(port: Int, _ text: String, from: String? = nil, seconds: TimeInterval = 10) async throws -> RawAnswer {
        let connection = try await open(port: port, from: from)
        defer { Task { await connection.close() } }
        try await connection.send(text)
        guard let answer = await connection.waitAnswer(seconds: seconds) else {
            throw HarnessError(description: "no whole answer within \(seconds) s; got: \(connection.received.prefix(300))")
        }
        return answer
    }

    private final class Collector: Sendable {
        private let state = NIOLockedValueBox((bytes: [UInt8](), closed: false))
        var text: String { state.withLockedValue { String(decoding: $0.bytes, as: UTF8.self) } }
        var closed: Bool { state.withLockedValue { $0.closed } }
        func append(_ buffer: ByteBuffer) { state.withLockedValue { $0.bytes += buffer.readableBytesView } }
        func close() { state.withLockedValue { $0.closed = true } }
    }

    private final class CollectHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let collector: Collector
        init(_ collector: Collector) { self.collector = collector }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { collector.append(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { collector.close() }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

/// A parsed HTTP/1.1 answer.
struct RawAnswer {
    var status: Int
    var headers: [String: String]
    var body: String

    init?(_ text: String) {
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = String(text[end.upperBound...])
        if let length = headers["content-length"].flatMap(Int.init), body.utf8.count < length { return nil }
        self.status = status
        self.headers = headers
        self.body = body
    }
}
