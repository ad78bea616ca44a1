import Foundation
import MusterEtcd

/// Token bookkeeping in the backing etcd: `_etcd/registry/TOKEN/_config/size` (what etcd's
/// discovery client reads) and `_config/created` (unix seconds, what the sweep reads). Both sit
/// under the hidden `_config` directory, so no listing shows them.
struct Registry: Sendable {
    static let root = "/_etcd/registry"
    let client: V2KeysClient

    enum Failure: Error, CustomStringConvertible {
        /// etcd answered, but not as the v2 keys API does (no `--enable-v2`) or with an error.
        case backend(status: Int, text: String)
        case unavailable(EtcdClientError)

        var description: String {
            switch self {
            case .backend(let status, let text): return "backing etcd answered \(status): \(text.prefix(300))"
            case .unavailable(let error): return error.description
            }
        }
    }

    /// `/_etcd/registry/TOKEN[/KEY...]`.
    static func key(_ components: [String]) -> String {
        root + components.map { "/" + $0 }.joined()
    }

    /// Makes a fresh token holding `size`; returns the token.
    func create(size: Int, now: Date = Date()) async throws(Failure) -> String {
        for _ in 0..<3 {
            let token = DiscoveryRules.newToken()
            let created = try await call { try await client.put(Self.key([token, "_config", "created"]),
                                                                value: String(Int(now.timeIntervalSince1970)), prevExist: false) }
            if created.status == 412 { continue }  // 105: key already exists; 128 random bits never collide, but still
            try expect(created, [201])
            let sized = try await call { try await client.put(Self.key([token, "_config", "size"]), value: String(size)) }
            guard sized.status == 200 || sized.status == 201 else {
                _ = try? await deleteToken(token)
                throw Self.failure(sized)
            }
            return token
        }
        throw .backend(status: 412, text: "three fresh tokens in a row already existed")
    }

    /// The token's size: nil with etcd's answer when the token holds none (an unknown token).
    func size(_ token: String) async throws(Failure) -> (size: Int?, answer: V2KeysAnswer) {
        let answer = try await call { try await client.get(Self.key([token, "_config", "size"])) }
        if answer.isKeyNotFound { return (nil, answer) }
        guard answer.status == 200 else { throw Self.failure(answer) }
        return (answer.nodeValue.flatMap { Int($0) }, answer)
    }

    /// The member keys a token holds (hidden `_` keys excluded).
    func memberKeys(_ token: String) async throws(Failure) -> [String] {
        let answer = try await call { try await client.get(Self.key([token])) }
        if answer.isKeyNotFound { return [] }
        guard answer.status == 200 else { throw Self.failure(answer) }
        return answer.childNames.filter { !$0.hasPrefix("_") }
    }

    func deleteToken(_ token: String) async throws(Failure) {
        let answer = try await call { try await client.delete(Self.key([token]), recursive: true) }
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
        let listing = try await call { try await client.get(Self.root) }
        if listing.status == 404 && listing.errorCode == 100 { return SweepResult() }  // no token made yet
        guard listing.status == 200 else { throw Self.failure(listing) }
        let tokens = listing.childNames.filter { DiscoveryRules.isValidToken($0) }
        var result = SweepResult()
        let cutoff = now.timeIntervalSince1970 - maxAge
        for token in tokens {
            let created = try await call { try await client.get(Self.key([token, "_config", "created"])) }
            guard created.status == 200, let value = created.nodeValue, let stamp = Double(value) else {
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

    /// One call to the backing etcd; no answer at all is `.unavailable`.
    func call(_ body: () async throws -> V2KeysAnswer) async throws(Failure) -> V2KeysAnswer {
        do {
            return try await body()
        } catch let error as EtcdClientError {
            throw .unavailable(error)
        } catch {
            throw .unavailable(EtcdClientError(transport: "\(error)", url: client.baseURL))
        }
    }

    private func expect(_ answer: V2KeysAnswer, _ statuses: Set<Int>) throws(Failure) {
        guard statuses.contains(answer.status) else { throw Self.failure(answer) }
    }

    static func failure(_ answer: V2KeysAnswer) -> Failure {
        if answer.status == 404 && !answer.isV2JSON {
            return .backend(status: 404, text: "the v2 keys API is not served (start the backing etcd with --enable-v2 / enable-v2: true)")
        }
        return .backend(status: answer.status, text: answer.text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
