import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Who a quota counts against: the client's source address, an IPv6 client by its /64 (one
/// host holds a whole /64, so a per-address quota would be no quota for it).
enum ClientKey {
    static func of(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return bytes[12..<16].map(String.init).joined(separator: ".")  // IPv4-mapped
        }
        return bytes[0..<8].map { String(format: "%02x", $0) }.joined() + "::/64"
    }
}

/// `/new` per client: a bucket of `burst` tokens that refills `perMinute` a minute. A client
/// that empties it gets 429 until the next one is due.
final class NewTokenRate: Sendable {
    let burst: Double
    let perSecond: Double
    /// Clients tracked at once; full buckets are forgotten first, then the stalest.
    static let maxTracked = 65_536
    private let buckets = NIOLockedValueBox([String: (tokens: Double, at: ContinuousClock.Instant)]())

    init(burst: Int, perMinute: Int) {
        self.burst = Double(max(burst, 1))
        self.perSecond = Double(max(perMinute, 1)) / 60
    }

    /// Nil when `client` may make a token now (and it is counted), else the seconds to wait.
    func take(_ client: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLockedValue { buckets in
            var bucket = buckets[client] ?? (burst, now)
            let elapsed = now - bucket.at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + max(seconds, 0) * perSecond)
            bucket.at = now
            guard bucket.tokens >= 1 else {
                buckets[client] = bucket
                return Int(((1 - bucket.tokens) / perSecond).rounded(.up))
            }
            bucket.tokens -= 1
            if buckets[client] == nil && buckets.count >= Self.maxTracked { Self.forget(&buckets, now: now, burst: burst, perSecond: perSecond) }
            buckets[client] = bucket
            return nil
        }
    }

    private static func forget(_ buckets: inout [String: (tokens: Double, at: ContinuousClock.Instant)],
                               now: ContinuousClock.Instant, burst: Double, perSecond: Double) {
        let refill = Duration.seconds(burst / perSecond)
        buckets = buckets.filter { now - $0.value.at < refill }
        if buckets.count >= maxTracked, let stalest = buckets.min(by: { $0.value.at < $1.value.at })?.key {
            buckets[stalest] = nil
        }
    }
}

/// How many tokens the backing etcd holds, so that `/new` stops at `maxTokens`. The sweep counts
/// them (`recount`); `/new` adds one each. The cap also bounds the sweep's one listing of all
/// tokens (about 110 bytes a token: 100,000 tokens list in about 11 MB, under the v2 client's
/// 64 MiB answer cap), which the v2 keys API cannot page.
final class TokenCensus: Sendable {
    let cap: Int
    private let state = NIOLockedValueBox((count: 0, madeSinceListing: 0))

    init(cap: Int) { self.cap = cap }

    var count: Int { state.withLockedValue { $0.count } }

    /// Counts one more token, or false at the cap.
    func admit() -> Bool {
        state.withLockedValue { state in
            guard state.count < cap else { return false }
            state.count += 1
            state.madeSinceListing += 1
            return true
        }
    }

    /// A `/new` whose token could not be written gives its place back.
    func giveBack() {
        state.withLockedValue { state in
            state.count = max(state.count - 1, 0)
            state.madeSinceListing = max(state.madeSinceListing - 1, 0)
        }
    }

    /// Marks the start of a sweep's listing.
    func listingStarts() { state.withLockedValue { $0.madeSinceListing = 0 } }

    /// The sweep's count of what it kept, plus what `/new` made while it ran.
    func recount(kept: Int) { state.withLockedValue { $0.count = kept + $0.madeSinceListing } }
}

/// Long polls waiting now: at most `total` in all (503 beyond), a token's size's share per token
/// and `perClient` per client (429 beyond), so that no client and no token can take every slot.
final class LongPolls: Sendable {
    enum Refusal { case total, token, client }
    let total: Int
    let perClient: Int
    private let state = NIOLockedValueBox((count: 0, perToken: [String: Int](), perClient: [String: Int]()))

    init(total: Int, perClient: Int) {
        self.total = total
        self.perClient = perClient
    }

    var hasRoom: Bool { state.withLockedValue { $0.count < total } }
    var count: Int { state.withLockedValue { $0.count } }

    func acquire(_ token: String, perToken: Int, client: String) -> Refusal? {
        state.withLockedValue { state in
            if state.count >= total { return .total }
            if state.perClient[client, default: 0] >= perClient { return .client }
            if state.perToken[token, default: 0] >= perToken { return .token }
            state.count += 1
            state.perToken[token, default: 0] += 1
            state.perClient[client, default: 0] += 1
            return nil
        }
    }

    func release(_ token: String, client: String) {
        state.withLockedValue { state in
            state.count -= 1
            let left = state.perToken[token, default: 1] - 1
            state.perToken[token] = left > 0 ? left : nil
            let clientLeft = state.perClient[client, default: 1] - 1
            state.perClient[client] = clientLeft > 0 ? clientLeft : nil
        }
    }
}
