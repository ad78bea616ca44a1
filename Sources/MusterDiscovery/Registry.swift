import Foundation

/// Token bookkeeping in the backing etcd: `_etcd/registry/TOKEN/_config/size` (what etcd's
/// discovery client reads) and `_config/created` (unix seconds, what the sweep reads). Both sit
/// under the hidden `_config` directory, so no listing shows them.
struct Registry: Sendable {
    let backend: RegistryBackend

    enum Failure: Error, CustomStringConvertible {
        /// etcd answered, but not as the v2 keys API does (no `--enable-v2`) or with an error.
        case backend(status: Int, text: String)
        case unavailable(BackendUnavailable)

        var description: String {
            switch self {
            case .backend(let status, let text): return "backing etcd answered \(status): \(text.prefix(300))"
            case .unavailable(let error): return error.description
            }
        }
    }

    /// Makes a fresh token holding `size`; returns the token.
    func create(size: Int, now: Date = Date()) async throws(Failure) -> String {
        for _ in 0..<3 {
            let token = DiscoveryRules.newToken()
            let created = try await put([token, "_config", "created"], value: String(Int(now.timeIntervalSince1970)),
                                        query: [("prevExist", "false")])
            if created.status == 412 { continue }  // 105: key already exists; 128 random bits never collide, but still
            try expect(created, [201])
            let sized = try await put([token, "_config", "size"], value: String(size))
            guard sized.status == 200 || sized.status == 201 else {
                _ = try? await deleteToken(token)
                throw Self.failure(sized)
            }
            return token
        }
        throw .backend(status: 412, text: "three fresh tokens in a row already existed")
    }

    /// The token holds a size (the service made it, or someone set it by hand).
    func sizeAnswer(_ token: String) async throws(Failure) -> BackendAnswer {
        let answer = try await call("GET", [token, "_config", "size"])
        guard answer.status == 200 || (answer.status == 404 && answer.errorCode == 100) else { throw Self.failure(answer) }
        return answer
    }

    func deleteToken(_ token: String) async throws(Failure) {
        let answer = try await call("DELETE", [token], query: [("dir", "true"), ("recursive", "true")])
        guard answer.status == 200 || answer.errorCode == 100 else { throw Self.failure(answer) }
    }

    struct SweepResult: Sendable, Equatable {
        var dropped: [String] = []
        var kept = 0
        /// Token directories without `_config/created` (not made by this service): left alone.
        var undated: [String] = []
    }

    /// Deletes every token created before `now - maxAge`.
    func sweep(maxAge: TimeInterval, now: Date = Date()) async throws(Failure) -> SweepResult {
        let listing = try await call("GET", [])
        if listing.status == 404 && listing.errorCode == 100 { return SweepResult() }  // no token made yet
        guard listing.status == 200 else { throw Self.failure(listing) }
        let tokens = Self.childNames(listing.body).filter(DiscoveryRules.isValidToken)
        var result = SweepResult()
        let cutoff = now.timeIntervalSince1970 - maxAge
        for token in tokens {
            let created = try await call("GET", [token, "_config", "created"])
            guard created.status == 200, let value = Self.nodeValue(created.body), let stamp = Double(value) else {
                result.undated.append(token)
                continue
            }
            if stamp < cutoff {
                try await deleteToken(token)
                result.dropped.append(token)
            } else {
                result.kept += 1
            }
        }
        return result
    }

    // MARK: plumbing

    func call(_ method: String, _ components: [String], query: [(name: String, value: String)] = [],
              form: [(name: String, value: String)]? = nil, timeout: TimeInterval? = nil) async throws(Failure) -> BackendAnswer {
        do {
            return try await backend.send(method, components, query: query, form: form, timeout: timeout)
        } catch let error as BackendUnavailable {
            throw .unavailable(error)
        } catch {
            throw .unavailable(BackendUnavailable(url: backend.keyURL(components), reason: "\(error)", timedOut: false))
        }
    }

    private func put(_ components: [String], value: String,
                     query: [(name: String, value: String)] = []) async throws(Failure) -> BackendAnswer {
        try await call("PUT", components, query: query, form: [("value", value)])
    }

    private func expect(_ answer: BackendAnswer, _ statuses: Set<Int>) throws(Failure) {
        guard statuses.contains(answer.status) else { throw Self.failure(answer) }
    }

    static func failure(_ answer: BackendAnswer) -> Failure {
        if answer.status == 404 && !answer.isV2JSON {
            return .backend(status: 404, text: "the v2 keys API is not served (start the backing etcd with --enable-v2 / enable-v2: true)")
        }
        return .backend(status: answer.status, text: answer.text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The last path components of a v2 directory listing's children.
    static func childNames(_ body: Data) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let node = object["node"] as? [String: Any],
              let nodes = node["nodes"] as? [[String: Any]] else { return [] }
        return nodes.compactMap { ($0["key"] as? String)?.split(separator: "/").last.map(String.init) }
    }

    static func nodeValue(_ body: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let node = object["node"] as? [String: Any] else { return nil }
        return node["value"] as? String
    }
}
