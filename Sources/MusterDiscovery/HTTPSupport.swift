import Foundation
import MusterEtcd
import NIOCore
import NIOHTTP1

/// Answer builders: plain text for `/new`, etcd's JSON error shape for the keys API, and
/// etcd's own answers passed through. `note` is what the request's log line says.
enum Reply {
    static func text(_ status: HTTPResponseStatus, _ text: String, note: String, retryAfter: Bool = false) -> ServerReply {
        var headers = [(name: "Content-Type", value: "text/plain; charset=utf-8")]
        if retryAfter { headers.append(("Retry-After", "1")) }
        return ServerReply(status: status, headers: headers, body: ByteBuffer(string: text), note: note)
    }

    /// etcd v2's error body: `{"cause":"...","errorCode":100,"index":0,"message":"Key not found"}`.
    static func etcdError(_ status: HTTPResponseStatus, code: Int, message: String, cause: String,
                          note: String, retryAfter: Bool = false) -> ServerReply {
        let object: [String: Any] = ["errorCode": code, "message": message, "cause": cause, "index": 0]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        var headers = [(name: "Content-Type", value: "application/json")]
        if retryAfter { headers.append(("Retry-After", "1")) }
        return ServerReply(status: status, headers: headers, body: ByteBuffer(bytes: data), note: note)
    }

    /// etcd's answer as it came: status, JSON body (possibly filtered), `X-Etcd-*` headers.
    static func passing(_ answer: V2KeysAnswer, body: Data? = nil, note: String) -> ServerReply {
        var headers = [(name: "Content-Type", value: answer.contentType ?? "application/json")]
        headers += answer.etcdHeaders
        return ServerReply(status: HTTPResponseStatus(statusCode: answer.status), headers: headers,
                           body: ByteBuffer(bytes: body ?? answer.body), note: note)
    }

    /// The backing etcd answered, but not as the v2 keys API does.
    static func noV2(note: String = "backing etcd does not serve the v2 keys API") -> ServerReply {
        etcdError(.badGateway, code: 300, message: "Raft Internal Error",
                  cause: "the backing etcd does not serve the v2 keys API (it needs --enable-v2)", note: note)
    }

    static func unavailable(_ error: EtcdClientError) -> ServerReply {
        etcdError(.serviceUnavailable, code: 300, message: "Raft Internal Error",
                  cause: "backing etcd unavailable: \(error.message)", note: "backing etcd unavailable: \(error)")
    }
}
