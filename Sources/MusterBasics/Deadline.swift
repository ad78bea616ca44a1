/// A bound on waiting, on the monotonic clock: the wall clock can jump (NTP, a suspended VM), a
/// deadline must not. Retry loops are written against it, so the bound they print is the bound
/// they keep, however long each attempt takes:
///
///     let deadline = Deadline(seconds: 5)
///     repeat {
///         if try await attempt() { return }
///     } while try await deadline.sleep(.milliseconds(20))
///     throw ... "not within \(deadline.text)"
public struct Deadline: Sendable {
    /// The bound as given, for messages.
    public let seconds: Double
    private let end: ContinuousClock.Instant

    public init(seconds: Double) {
        self.seconds = seconds
        end = .now + .seconds(seconds.isFinite ? max(seconds, 0) : 1e9)
    }

    public var passed: Bool { ContinuousClock.now >= end }

    /// What is left, for a blocking call's own timeout (`poll`): 0 once passed.
    public var remainingMilliseconds: Int {
        let left = end - ContinuousClock.now
        guard left > .zero else { return 0 }
        return Int(left.components.seconds) * 1000 + Int(left.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Sleeps `interval`, or only until the deadline when that comes sooner. False, without
    /// sleeping, once the deadline has passed: the loop has had its last attempt.
    public func sleep(_ interval: Duration) async throws -> Bool {
        let now = ContinuousClock.now
        guard now < end else { return false }
        try await Task.sleep(until: min(now + interval, end), clock: .continuous)
        return true
    }

    /// The bound as a message says it: `5 s`, `0.5 s`.
    public var text: String {
        seconds.isFinite && seconds == seconds.rounded() && abs(seconds) < 1e12 ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}
