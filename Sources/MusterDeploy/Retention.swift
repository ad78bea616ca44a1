import Foundation

/// Which snapshots stay, as restic's `forget --keep-*` decides it: newest first, `last` keeps the
/// newest N; each calendar rule keeps the newest snapshot of each of the N most recent hours,
/// days, ISO weeks or months that hold one. A snapshot kept by any rule stays; a rule of 0 is off.
/// Times are UTC (muster's snapshot names are). Pure: no disk, no clock.
public struct RetentionPolicy: Sendable, Equatable {
    public enum Rule: String, Sendable, CaseIterable { case last, hourly, daily, weekly, monthly }

    public var last: Int
    public var hourly: Int
    public var daily: Int
    public var weekly: Int
    public var monthly: Int

    public init(last: Int = 0, hourly: Int = 0, daily: Int = 0, weekly: Int = 0, monthly: Int = 0) {
        (self.last, self.hourly, self.daily, self.weekly, self.monthly) = (last, hourly, daily, weekly, monthly)
    }

    /// No rule set: nothing would be kept (callers refuse it rather than delete everything).
    public var isEmpty: Bool { count(.last) + count(.hourly) + count(.daily) + count(.weekly) + count(.monthly) == 0 }

    public func count(_ rule: Rule) -> Int {
        switch rule {
        case .last: last
        case .hourly: hourly
        case .daily: daily
        case .weekly: weekly
        case .monthly: monthly
        }
    }

    /// The flags that say this policy (`--keep-last 5 --keep-daily 7`).
    public var flags: String {
        Rule.allCases.filter { count($0) > 0 }.map { "--keep-\($0.rawValue) \(count($0))" }.joined(separator: " ")
    }

    public struct Decision<Item> {
        /// Kept, newest first, with the rules that keep each.
        public var kept: [(item: Item, rules: [Rule])]
        /// Removed, newest first.
        public var removed: [Item]
    }

    /// Applies the policy to `items`, each taken at `time(item)`; ties in time are broken by the
    /// order given (later in `items` counts as newer).
    public func apply<Item>(_ items: [Item], time: (Item) -> Date) -> Decision<Item> {
        let newestFirst = items.enumerated().sorted { a, b in
            let (ta, tb) = (time(a.element), time(b.element))
            return ta != tb ? ta > tb : a.offset > b.offset
        }.map(\.element)
        var remaining = Dictionary(uniqueKeysWithValues: Rule.allCases.map { ($0, count($0)) })
        var lastBucket: [Rule: Int] = [:]
        var decision = Decision<Item>(kept: [], removed: [])
        for (index, item) in newestFirst.enumerated() {
            var rules: [Rule] = []
            for rule in Rule.allCases where remaining[rule]! > 0 {
                let bucket = Self.bucket(rule, time(item), index: index)
                if bucket != lastBucket[rule] {
                    lastBucket[rule] = bucket
                    remaining[rule]! -= 1
                    rules.append(rule)
                }
            }
            if rules.isEmpty { decision.removed.append(item) } else { decision.kept.append((item, rules)) }
        }
        return decision
    }

    private static let utc: Calendar = {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// The hour, day, ISO week or month a time falls in, as one number; `last` gives each
    /// snapshot its own.
    static func bucket(_ rule: Rule, _ date: Date, index: Int) -> Int {
        let c = utc.dateComponents([.year, .month, .day, .hour, .yearForWeekOfYear, .weekOfYear], from: date)
        switch rule {
        case .last: return index
        case .hourly: return ((c.year! * 100 + c.month!) * 100 + c.day!) * 100 + c.hour!
        case .daily: return (c.year! * 100 + c.month!) * 100 + c.day!
        case .weekly: return c.yearForWeekOfYear! * 100 + c.weekOfYear!
        case .monthly: return c.year! * 100 + c.month!
        }
    }
}
