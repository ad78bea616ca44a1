import Foundation
import Testing
@testable import MusterDeploy

/// restic's `forget --keep-*` semantics, as a pure function of times.
struct RetentionTests {
    /// `2026-MM-DDTHH:MM:00Z`.
    static func at(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text + ":00Z")!
    }

    static func kept(_ policy: RetentionPolicy, _ times: [String]) -> [String: [RetentionPolicy.Rule]] {
        let decision = policy.apply(times) { at($0) }
        return Dictionary(uniqueKeysWithValues: decision.kept.map { ($0.item, $0.rules) })
    }

    @Test func keepLastKeepsTheNewestN() {
        let times = ["2026-12-01T10:00", "2026-12-01T11:00", "2026-12-01T12:00", "2026-12-01T13:00"]
        let decision = RetentionPolicy(last: 2).apply(times) { Self.at($0) }
        #expect(decision.kept.map(\.item) == ["2026-12-01T13:00", "2026-12-01T12:00"])
        #expect(decision.removed == ["2026-12-01T11:00", "2026-12-01T10:00"])
    }

    /// The newest snapshot of each day with one; days without a snapshot do not count.
    @Test func dailyKeepsTheNewestOfEachOfTheLastNDaysThatHaveOne() {
        let times = ["2026-11-20T08:00", "2026-11-28T09:00", "2026-11-28T23:00", "2026-11-30T01:00", "2026-11-30T02:00", "2026-12-01T05:00"]
        let kept = Self.kept(RetentionPolicy(daily: 3), times)
        #expect(Set(kept.keys) == ["2026-12-01T05:00", "2026-11-30T02:00", "2026-11-28T23:00"])
    }

    /// A snapshot kept by any rule stays, and says every rule that keeps it.
    @Test func rulesCombineAndNameWhatKeepsEach() {
        let times = ["2026-10-15T12:00", "2026-11-02T12:00", "2026-11-30T12:00", "2026-12-01T09:00", "2026-12-01T10:00", "2026-12-01T10:30"]
        let kept = Self.kept(RetentionPolicy(last: 1, hourly: 2, monthly: 3), times)
        #expect(kept["2026-12-01T10:30"] == [.last, .hourly, .monthly])
        #expect(kept["2026-12-01T10:00"] == nil, "same hour as a newer one")
        #expect(kept["2026-12-01T09:00"] == [.hourly])
        #expect(kept["2026-11-30T12:00"] == [.monthly])
        #expect(kept["2026-11-02T12:00"] == nil, "November already kept by its newest")
        #expect(kept["2026-10-15T12:00"] == [.monthly])
    }

    /// ISO weeks: Monday 2026-11-30 starts a new week; Sunday 2026-11-29 belongs to the one before.
    @Test func weeklyFollowsISOWeeks() {
        let times = ["2026-11-22T12:00", "2026-11-23T12:00", "2026-11-29T12:00", "2026-11-30T12:00"]
        let kept = Self.kept(RetentionPolicy(weekly: 2), times)
        #expect(Set(kept.keys) == ["2026-11-30T12:00", "2026-11-29T12:00"])
    }

    @Test func noRuleKeepsNothingAndSaysItIsEmpty() {
        #expect(RetentionPolicy().isEmpty)
        #expect(!RetentionPolicy(monthly: 1).isEmpty)
        #expect(RetentionPolicy(last: 3, daily: 7).flags == "--keep-last 3 --keep-daily 7")
    }
}
