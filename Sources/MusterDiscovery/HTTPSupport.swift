import Foundation
import Hummingbird

/// The request context: Hummingbird's core storage, the peer's address and a note the handler
/// leaves for the request's log line.
struct DiscoveryContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remote: String
    let note = Note()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remote = source.channel.remoteAddress?.ipAddress ?? "?"
    }

    /// Form bodies are a few hundred bytes; `formValue` applies the configured bound.
    var maxUploadSize: Int { 64 * 1024 }
}

/// What the handler says about a request, for the log line (a class: contexts are copied).
final class Note: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func set(_ value: String) { lock.withLock { text = value } }
    var value: String { lock.withLock { text } }
}

/// One line per request: time, peer, method, path and query, status, duration, and the
/// handler's note (token made, etcd's answer, why refused).
struct RequestLog: RouterMiddleware {
    typealias Context = DiscoveryContext
    let log: @Sendable (String) -> Void

    func handle(_ request: Request, context: DiscoveryContext,
                next: (Request, DiscoveryContext) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var target = request.uri.path
        if let query = request.uri.query, !query.isEmpty { target += "?" + query }
        func line(_ status: Int, _ note: String) {
            let elapsed = ContinuousClock.now - started
            let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
            log("\(Date().formatted(.iso8601)) \(context.remote) \(request.method.rawValue) \(target.prefix(300)) -> \(status) \(milliseconds) ms\(note.isEmpty ? "" : "  " + note)")
        }
        do {
            let response = try await next(request, context)
            line(response.status.code, context.note.value)
            return response
        } catch let error as HTTPError {
            let reason = error.body ?? error.status.reasonPhrase
            line(error.status.code, context.note.value.isEmpty ? reason : context.note.value + "; " + reason)
            throw error
        } catch {
            line(500, "\(error)")
            throw error
        }
    }
}

/// Response builders: plain text for `/new`, etcd's JSON error shape for the keys API, and
/// etcd's own answers passed through.
enum Reply {
    typealias Field = HTTPFields.Element

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// etcd v2's error body: `{"errorCode":100,"message":"Key not found","cause":"...","index":0}`.
    static func etcdError(_ status: HTTPResponse.Status, code: Int, message: String, cause: String) -> Response {
        let object: [String: Any] = ["errorCode": code, "message": message, "cause": cause, "index": 0]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// etcd's answer as it came: status, JSON body (possibly filtered), `X-Etcd-*` headers.
    static func passing(_ answer: BackendAnswer, body: Data? = nil) -> Response {
        var headers: HTTPFields = [.contentType: answer.contentType ?? "application/json"]
        for (name, value) in answer.etcdHeaders {
            if let fieldName = Field.Name(name) { headers.append(Field(name: fieldName, value: value)) }
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: body ?? answer.body)))
    }
}
