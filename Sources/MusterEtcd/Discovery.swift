import Foundation

/// A member registered under a discovery token: key `<member-id-hex>`, value `name=peerURL`.
public struct DiscoveredMember: Sendable, Equatable {
    /// The key's last path component (the member ID in hex, as etcd writes it).
    public var key: String
    public var value: String
    public var name: String { value.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }
    public var peerURLs: [String] {
        guard let equals = value.firstIndex(of: "=") else { return [] }
        return value[value.index(after: equals)...].split(separator: ",").map(String.init)
    }
}

/// The etcd v2 keys API as etcd's discovery protocol uses it, against an etcd backend that has
/// `enable-v2: true`. The discovery URL is the key directory itself:
/// `http://HOST:PORT/v2/keys/discovery/TOKEN`. With `tls`, an `https://` backend is reached with
/// the cluster CA as the only trust root and muster's client certificate.
///
/// These one-shot calls share muster's etcd transport; a long-running user (the discovery
/// service) holds a `V2KeysClient` with its own pool, sized for its long polls.
public enum V2Keys {
    public static let defaultTimeout: TimeInterval = 5

    /// Registers the cluster size for a token: `PUT BASE/_config/size` with form body `value=N`.
    public static func setDiscoverySize(baseURL: String, size: Int,
                                        timeout: TimeInterval = defaultTimeout,
                                        tls: EtcdTLS? = nil) async throws(EtcdClientError) {
        let url = trimmed(baseURL) + "/_config/size"
        let answer = try await HTTP(timeout: timeout, tls: tls).send(
            "PUT", url, body: Data("value=\(size)".utf8),
            contentType: "application/x-www-form-urlencoded")
        guard answer.status == 200 || answer.status == 201 else {
            throw v2Error(answer, url: url)
        }
    }

    /// The size registered for a token, or nil when none is (etcd's `100: Key not found`).
    public static func discoverySize(baseURL: String,
                                     timeout: TimeInterval = defaultTimeout,
                                     tls: EtcdTLS? = nil) async throws(EtcdClientError) -> Int? {
        let url = trimmed(baseURL) + "/_config/size"
        let answer = try await HTTP(timeout: timeout, tls: tls).send("GET", url)
        if isKeyNotFound(answer) { return nil }
        guard answer.status == 200, let node = try? JSONDecoder().decode(V2Answer.self, from: answer.body).node,
              let value = node.value else {
            throw v2Error(answer, url: url)
        }
        return Int(value)
    }

    /// Members already registered under a token (hidden `_` keys such as `_config` excluded).
    /// A token never used (`404`, errorCode 100) has none. Preflight uses this to refuse a used
    /// token. Throws when the backend does not serve the v2 API at all.
    public static func registeredMembers(discoveryURL: String,
                                         timeout: TimeInterval = defaultTimeout,
                                         tls: EtcdTLS? = nil) async throws(EtcdClientError) -> [DiscoveredMember] {
        let url = trimmed(discoveryURL)
        let answer = try await HTTP(timeout: timeout, tls: tls).send("GET", url)
        if isKeyNotFound(answer) { return [] }
        guard answer.status == 200 else { throw v2Error(answer, url: url) }
        let parsed: V2Answer
        do {
            parsed = try JSONDecoder().decode(V2Answer.self, from: answer.body)
        } catch {
            throw EtcdClientError(kind: .decoding, url: url, httpStatus: answer.status,
                                  message: "\(error); body: \(answer.text.prefix(200))")
        }
        return (parsed.node?.nodes ?? []).compactMap { node in
            let name = node.key.split(separator: "/").last.map(String.init) ?? node.key
            guard !name.hasPrefix("_"), node.dir != true else { return nil }
            return DiscoveredMember(key: name, value: node.value ?? "")
        }.sorted { $0.key < $1.key }
    }

    static func trimmed(_ url: String) -> String {
        var text = url
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    struct V2Node: Decodable {
        var key: String
        var value: String?
        var dir: Bool?
        var nodes: [V2Node]?
    }
    struct V2Answer: Decodable {
        var node: V2Node?
        var errorCode: Int?
        var message: String?
    }

    static func isKeyNotFound(_ answer: HTTPAnswer) -> Bool {
        guard answer.status == 404 else { return false }
        return (try? JSONDecoder().decode(V2Answer.self, from: answer.body))?.errorCode == 100
    }

    static func v2Error(_ answer: HTTPAnswer, url: String) -> EtcdClientError {
        if let parsed = try? JSONDecoder().decode(V2Answer.self, from: answer.body), let code = parsed.errorCode {
            return EtcdClientError(kind: .http, url: url, httpStatus: answer.status,
                                   message: "\(code): \(parsed.message ?? "")")
        }
        let text = answer.text.trimmingCharacters(in: .whitespacesAndNewlines)
        if answer.status == 404 {
            return EtcdClientError(kind: .http, url: url, httpStatus: 404,
                                   message: "v2 keys API not served (the backend needs enable-v2: true)")
        }
        return EtcdClientError(kind: .http, url: url, httpStatus: answer.status,
                               message: text.isEmpty ? "empty body" : String(text.prefix(300)))
    }
}

/// A public-style discovery service (like discovery.etcd.io): `GET SERVICE/new?size=N` answers
/// with the new discovery URL as plain text.
public enum DiscoveryService {
    public static func newToken(serviceURL: String, size: Int,
                                timeout: TimeInterval = V2Keys.defaultTimeout,
                                tls: EtcdTLS? = nil) async throws(EtcdClientError) -> String {
        let url = V2Keys.trimmed(serviceURL) + "/new?size=\(size)"
        let answer = try await HTTP(timeout: timeout, tls: tls).send("GET", url)
        let text = answer.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard answer.status == 200 else {
            throw EtcdClientError(kind: .http, url: url, httpStatus: answer.status,
                                  message: text.isEmpty ? "empty body" : String(text.prefix(300)))
        }
        guard let parsed = URL(string: text), parsed.scheme == "http" || parsed.scheme == "https",
              parsed.host != nil else {
            throw EtcdClientError(kind: .decoding, url: url, httpStatus: answer.status,
                                  message: "expected a discovery URL, got \(text.prefix(200))")
        }
        return text
    }
}
