import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// The certificate a member presents in its TLS handshake: what clients see, which may differ
/// from the file muster keeps in its state (a member not restarted since, a file replaced by hand).
public struct PresentedCertificate: Sendable, Equatable {
    public var commonName: String
    public var notAfter: Date
}

extension EtcdClient {
    /// Completes one TLS handshake with the member (as every request does: the cluster CA, muster's
    /// client certificate, the URL's host checked) and returns the certificate it presented.
    /// Nil for an `http` URL.
    public func presentedCertificate() async throws(EtcdClientError) -> PresentedCertificate? {
        let url = baseURL
        guard let context = try http.tlsContext(for: url) else { return nil }
        guard let target = HTTPTransport.Target(url) else {
            throw EtcdClientError(kind: .badURL, url: url, message: "not an http(s) URL")
        }
        let serverName = target.hostIsIPLiteral ? nil : target.host
        let milliseconds = Int64((max(timeout, 0.001) * 1000).rounded(.up))
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(milliseconds))
                .connect(host: target.host, port: target.port).get()
            let handshake = channel.eventLoop.makePromise(of: NIOSSLCertificate?.self)
            let bound = channel.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
                handshake.fail(HTTPTransportError.deadlineExceeded)
            }
            defer { bound.cancel(); channel.close(promise: nil) }
            try await channel.eventLoop.submit {
                let pipeline = channel.pipeline.syncOperations
                try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                try pipeline.addHandler(HandshakeWatcher(handshake))
            }.get()
            guard let certificate = try await handshake.futureResult.get() else {
                throw EtcdClientError(kind: .tls, url: url, message: "the member presented no certificate")
            }
            // NIOSSL shows the common name only in its description (`...;common_name=NAME;...`).
            let name = certificate.description.components(separatedBy: ";common_name=").dropFirst().first?
                .prefix { $0 != ";" && $0 != ">" }.description ?? ""
            return PresentedCertificate(commonName: name,
                                        notAfter: Date(timeIntervalSince1970: TimeInterval(certificate.notValidAfter)))
        } catch let error as EtcdClientError {
            throw error
        } catch {
            throw HTTP.clientError(error, url: url)
        }
    }
}

/// Completes `promise` with the peer's certificate once the handshake is done, or fails it
/// with the first error (or the connection's end).
private final class HandshakeWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<NIOSSLCertificate?>

    init(_ promise: EventLoopPromise<NIOSSLCertificate?>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise.succeed(try? context.pipeline.syncOperations.nioSSL_peerCertificate())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HTTPTransportError.connectionClosed)
        context.fireChannelInactive()
    }
}
