import Foundation
import MusterBasics
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// etcd's `Maintenance.Snapshot` read as etcdctl reads it: one gRPC call over HTTP/2 (TLS with
/// ALPN "h2", or cleartext HTTP/2 for an http member), its messages decoded by hand.
///
/// Why not the JSON gateway: measured on a TLS member holding 241 MB, curl alone took 4.5-6.4 s to
/// read `/v3/maintenance/snapshot` where etcdctl took 1.4-1.7 s: the gateway's cost is etcd's own
/// (protobuf to JSON, base64, an internal gRPC hop), which no client-side parsing can win back.
///
/// Memory stays bounded: HTTP/2 flow control lets the member send at most `window` bytes ahead of
/// what muster has taken, and one gRPC message (at most 4 MiB) is buffered at a time.
enum GRPCSnapshotStream {
    static let path = "/etcdserverpb.Maintenance/Snapshot"
    /// The stream's and the connection's flow-control window: large enough that loopback and LAN
    /// transfers are not held by round trips, small enough to bound what is in flight.
    static let window = 4 << 20
    /// Database bytes gathered before one write to the file.
    static let writeBatch = 1 << 20

    /// Streams the snapshot from `baseURL` to `write`, chunk by chunk as it arrives, checking it as
    /// `SnapshotStreamAccount` says and its digest against the bytes before it (before the digest
    /// is passed on). `deadline` bounds the whole transfer, `readTimeout` any silence while muster
    /// waits for data.
    static func save(baseURL: String, tls: EtcdTLS?, deadline: NIODeadline, connectTimeout: TimeAmount,
                     readTimeout: TimeAmount, write: (Data) async throws -> Void) async throws -> SnapshotDownload {
        let url = baseURL + Self.path
        guard let target = HTTPTransport.Target(url) else {
            throw EtcdClientError(kind: .badURL, url: url, message: "not an http(s) URL")
        }
        let context: NIOSSLContext?
        if target.isTLS {
            do {
                var configuration = try tls?.configuration() ?? .makeClientConfiguration()
                configuration.applicationProtocols = ["h2"]
                context = try NIOSSLContext(configuration: configuration)
            } catch let error as EtcdClientError {
                var error = error
                error.url = url
                throw error
            } catch {
                throw EtcdClientError(kind: .tls, url: url, message: "\(error)")
            }
        } else {
            context = nil
        }
        let clock = ContinuousClock()
        let started = clock.now
        let guardian = StreamGuardian()
        var streaming = false
        do {
            let multiplexer = try await connect(target, context: context, guardian: guardian,
                                                connectTimeout: min(connectTimeout, deadline - .now()))
            defer { guardian.close() }
            guardian.start(deadline: deadline, readTimeout: readTimeout)
            let stream = try await multiplexer.openStream { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 16, highWatermark: 64)))
                }
            }
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": target.isTLS ? "https" : "http", ":path": Self.path,
                ":authority": target.hostHeader, "content-type": "application/grpc", "te": "trailers",
                "user-agent": "muster",
            ]
            return try await stream.executeThenClose { inbound, outbound in
                do {
                    try await outbound.write(.headers(.init(headers: headers)))
                    // An empty SnapshotRequest: no compression flag, length 0.
                    try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 0])), endStream: true)))
                } catch { throw guardian.explain(error) }
                var receiver = GRPCSnapshotReceiver(url: url)
                var iterator = inbound.makeAsyncIterator()
                while true {
                    guardian.asking(true)
                    let payload: HTTP2Frame.FramePayload?
                    do { payload = try await iterator.next() } catch { throw guardian.explain(error) }
                    guardian.asking(false)
                    guard let payload else { break }
                    switch payload {
                    case .headers(let frame):
                        streaming = true
                        try receiver.headers(frame.headers, endStream: frame.endStream)
                    case .data(let frame):
                        guard case .byteBuffer(var bytes) = frame.data else { continue }
                        try await receiver.data(&bytes, write: write)
                    case .rstStream(let code):
                        throw SnapshotError("\(url): etcd reset the snapshot stream (\(code))")
                    default:
                        continue
                    }
                    if receiver.ended { break }
                }
                if let failure = guardian.failure { throw failure }
                let digests = try await receiver.finish(write: write)
                return SnapshotDownload(bytes: receiver.written, digests: digests, seconds: (clock.now - started).seconds)
            }
        } catch let error as EtcdClientError {
            throw error
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw HTTP.clientError(guardian.failure.map { $0 as any Error } ?? error, url: url, prefix: streaming ? "snapshot stream: " : "")
        }
    }

    private static func connect(_ target: HTTPTransport.Target, context: NIOSSLContext?, guardian: StreamGuardian,
                                connectTimeout: TimeAmount) async throws -> NIOHTTP2Handler.AsyncStreamMultiplexer<Void> {
        guard connectTimeout > .zero else { throw HTTPTransportError.deadlineExceeded }
        let serverName = context != nil && !target.hostIsIPLiteral ? target.host : nil
        var settings = NIOHTTP2Handler.Configuration()
        settings.connection.initialSettings = nioDefaultSettings + [HTTP2Setting(parameter: .initialWindowSize, value: window)]
        settings.connection.targetWindowSize = window
        settings.stream.targetWindowSize = window
        let configuration = settings
        do {
            return try await withTaskCancellationHandler {
                try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(connectTimeout)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: target.host, port: target.port) { channel in
                        guardian.attach(channel)
                        return channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            if let context {
                                try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                            }
                            try pipeline.addHandler(ErrorMemory(guardian))
                            // The member opens no streams of its own; any it tried would be refused.
                            return try pipeline.configureAsyncHTTP2Pipeline(mode: .client, configuration: configuration) { stream in
                                stream.close()
                            }
                        }
                    }
            } onCancel: {
                guardian.fail(.cancelled)
            }
        } catch {
            if Task.isCancelled { throw HTTPTransportError.cancelled }
            if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                throw HTTPTransportError.connectTimeout
            }
            throw error
        }
    }
}

/// What one call receives: the response's headers and trailers, and its messages, hashed and
/// checked as they come and handed on in batches of about `writeBatch` bytes.
struct GRPCSnapshotReceiver {
    let url: String
    private var messages = GRPCMessageReader()
    private var account = SnapshotStreamAccount()
    private let hasher = SHA256Hasher()
    private var batch = ByteBuffer()
    private var sawHeaders = false
    private(set) var ended = false
    private(set) var written: Int64 = 0
    private(set) var databaseDigest: String?

    init(url: String) { self.url = url }

    /// The response's headers, or its trailers (which end the call).
    mutating func headers(_ headers: HPACKHeaders, endStream: Bool) throws {
        if !sawHeaders {
            sawHeaders = true
            let status = headers.first(name: ":status") ?? "none"
            guard status == "200" else {
                throw EtcdClientError(kind: .http, url: url, httpStatus: Int(status), message: "etcd refused the snapshot call (HTTP status \(status))")
            }
            let type = headers.first(name: "content-type") ?? ""
            guard type.hasPrefix("application/grpc") else {
                throw EtcdClientError(kind: .decoding, url: url, message: "snapshot call answered with content-type \(type.isEmpty ? "none" : type), not gRPC")
            }
            // A call that fails at once answers with its status in these headers ("trailers-only").
            guard endStream else { return }
        }
        ended = true
        let code = headers.first(name: "grpc-status") ?? ""
        guard code == "0" else {
            let message = (headers.first(name: "grpc-message") ?? "").removingPercentEncoding ?? ""
            throw EtcdClientError(kind: .http, url: url, httpStatus: 200,
                                  message: "snapshot stream: etcd ended the call with gRPC status \(code.isEmpty ? "none" : code)\(message.isEmpty ? "" : ": " + message)")
        }
    }

    mutating func data(_ bytes: inout ByteBuffer, write: (Data) async throws -> Void) async throws {
        guard sawHeaders, !ended else { throw SnapshotError("\(url): the snapshot stream sent data outside its response") }
        var parts: [(SnapshotStreamAccount.Part, ByteBuffer)] = []
        do {
            for message in try messages.feed(&bytes) {
                let fields = try SnapshotResponseFields(message)
                parts.append((try account.take(blobBytes: fields.blob.readableBytes, remaining: fields.remainingBytes), fields.blob))
            }
        } catch let error as SnapshotError {
            throw SnapshotError("\(url): \(error.description)")
        }
        for (part, blob) in parts {
            switch part {
            case .database:
                blob.withUnsafeReadableBytes { hasher.update($0) }
                var blob = blob
                batch.writeBuffer(&blob)
            case .digest:
                let computed = Digest.hex(hasher.digestSoFar())
                let sent = Digest.hex(Array(blob.readableBytesView))
                guard sent == computed else {
                    throw SnapshotError("\(url): the snapshot's digest \(sent) does not match its \(written + Int64(batch.readableBytes)) bytes (sha256 \(computed)): damaged in transit")
                }
                databaseDigest = sent
                // The file's digest goes on through the 32 bytes that end it.
                blob.withUnsafeReadableBytes { hasher.update($0) }
                var blob = blob
                batch.writeBuffer(&blob)
            }
        }
        if batch.readableBytes >= GRPCSnapshotStream.writeBatch { try await flush(write) }
    }

    /// The call ended: everything must be in. Hands on the rest; the file's and database's digests.
    mutating func finish(write: (Data) async throws -> Void) async throws -> SnapshotDigests {
        guard sawHeaders else { throw SnapshotError("\(url): the snapshot call ended without an answer") }
        guard ended else { throw SnapshotError("\(url): the snapshot stream ended without its gRPC status (cut)") }
        guard !messages.holdsPartialMessage else { throw SnapshotError("\(url): the snapshot stream ended inside a message") }
        do { try account.finish() } catch let error as SnapshotError {
            throw SnapshotError("\(url): \(error.description)")
        }
        try await flush(write)
        return SnapshotDigests(file: Digest.hex(hasher.finalize()), database: databaseDigest ?? "")
    }

    private mutating func flush(_ write: (Data) async throws -> Void) async throws {
        guard batch.readableBytes > 0 else { return }
        try await write(Data(batch.readableBytesView))
        written += Int64(batch.readableBytes)
        batch.clear()
    }
}

/// The connection's bounds, shared by the task reading and the channel's event loop: the whole
/// transfer's deadline, and the read timeout, which counts only while muster asks for data (a
/// reader held back by a slow disk is not a silent member). The first reason wins; either closes
/// the connection.
private final class StreamGuardian: Sendable {
    /// The first reason the stream ends and the connection's first error: `HTTPTransport`'s own.
    private let exchange = ExchangeState()
    private struct Timing {
        var askingSince: NIODeadline?
        var timer: RepeatedTask?
        var channel: (any Channel)?
    }
    private let timing = NIOLockedValueBox(Timing())

    var failure: HTTPTransportError? { exchange.failure }

    func attach(_ channel: any Channel) {
        timing.withLockedValue { $0.channel = channel }
        exchange.attach(channel)
    }

    func start(deadline: NIODeadline, readTimeout: TimeAmount) {
        guard let channel = timing.withLockedValue({ $0.channel }) else { return }
        let timer = channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .milliseconds(200)) { [self] _ in
            let now = NIODeadline.now()
            if now >= deadline { fail(.deadlineExceeded); return }
            let since = timing.withLockedValue { $0.askingSince }
            if let since, now - since >= readTimeout { fail(.readTimeout) }
        }
        timing.withLockedValue { $0.timer = timer }
    }

    func asking(_ asking: Bool) {
        timing.withLockedValue { $0.askingSince = asking ? .now() : nil }
    }

    func fail(_ reason: HTTPTransportError) { exchange.fail(reason) }

    func saw(_ error: any Error) { exchange.saw(error) }

    func close() {
        let (channel, timer) = timing.withLockedValue { ($0.channel, $0.timer) }
        timer?.cancel()
        channel?.close(promise: nil)
    }

    /// What to throw for a read or write that failed: the bound that ran out, else the
    /// connection's first error (a TLS failure), else the error itself.
    func explain(_ error: any Error) -> any Error { exchange.explain(error) }
}

/// Remembers the connection's first error (a TLS handshake's is more telling than the closed
/// stream a later read meets).
private final class ErrorMemory: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    private let guardian: StreamGuardian
    init(_ guardian: StreamGuardian) { self.guardian = guardian }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guardian.saw(error)
        context.fireErrorCaught(error)
    }
}
