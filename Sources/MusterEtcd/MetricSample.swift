import Foundation

/// One read of a member's `/metrics` (Prometheus' text exposition format, as etcd serves it):
/// every sample line, comments skipped.
public struct MetricSample: Sendable, Equatable {
    public struct Series: Sendable, Equatable {
        public var labels: [String: String]
        public var value: Double
    }

    /// Series by metric name (a histogram's `_bucket`, `_sum` and `_count` are names of their own).
    public var series: [String: [Series]]

    public init(series: [String: [Series]]) { self.series = series }

    /// Parses the text; lines it cannot read are skipped (etcd writes none, and one odd line
    /// should not hide every other metric).
    public init(parsing text: String) {
        var series: [String: [Series]] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let parsed = MetricSample.parse(line: Substring(trimmed)) else { continue }
            series[parsed.name, default: []].append(parsed.series)
        }
        self.series = series
    }

    /// The value of a metric without labels (a gauge or counter etcd keeps once per member).
    public func value(_ name: String) -> Double? {
        series[name]?.first { $0.labels.isEmpty }?.value ?? series[name]?.first?.value
    }

    /// A histogram's cumulative buckets, grouped by its labels other than `le` (etcd's peer
    /// round trip has one histogram per peer, labelled `To`).
    public func histograms(_ name: String) -> [[String: String]: [(upperBound: Double, count: Double)]] {
        var grouped: [[String: String]: [(upperBound: Double, count: Double)]] = [:]
        for item in series[name + "_bucket"] ?? [] {
            guard let le = item.labels["le"], let bound = le == "+Inf" ? Double.infinity : Double(le) else { continue }
            var labels = item.labels
            labels["le"] = nil
            grouped[labels, default: []].append((bound, item.value))
        }
        return grouped.mapValues { $0.sorted { $0.upperBound < $1.upperBound } }
    }

    /// `name{a="x",b="y"} value [timestamp]`.
    static func parse(line: Substring) -> (name: String, series: Series)? {
        var rest = line
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " || $0 == "\t" } ?? rest.endIndex
        let name = String(rest[..<nameEnd])
        guard !name.isEmpty else { return nil }
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while let first = rest.first, first != "}" {
                if first == "," || first == " " { rest = rest.dropFirst(); continue }
                guard let equals = rest.firstIndex(of: "=") else { return nil }
                let key = String(rest[..<equals]).trimmingCharacters(in: .whitespaces)
                rest = rest[rest.index(after: equals)...]
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(character == "n" ? "\n" : character); escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        break
                    } else {
                        value.append(character)
                    }
                }
                labels[key] = value
            }
            guard rest.first == "}" else { return nil }
            rest = rest.dropFirst()
        }
        let fields = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let text = fields.first else { return nil }
        let value: Double?
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default: value = Double(text)
        }
        guard let value else { return nil }
        return (name, Series(labels: labels, value: value))
    }
}

/// What a histogram observed between two samples: its buckets' increases.
public struct HistogramWindow: Sendable, Equatable {
    /// Cumulative counts by upper bound, ascending, `+Inf` last.
    public var buckets: [(upperBound: Double, count: Double)]

    public static func == (a: HistogramWindow, b: HistogramWindow) -> Bool {
        a.buckets.map(\.upperBound) == b.buckets.map(\.upperBound) && a.buckets.map(\.count) == b.buckets.map(\.count)
    }

    /// The increase from `first` to `second`; a bucket that went down (the member restarted in
    /// between, its counters from zero) counts from zero, as Prometheus' `rate` does.
    public init(from first: [(upperBound: Double, count: Double)], to second: [(upperBound: Double, count: Double)]) {
        let before = Dictionary(first.map { ($0.upperBound, $0.count) }, uniquingKeysWith: { a, _ in a })
        let reset = second.contains { $0.count < (before[$0.upperBound] ?? 0) }
        buckets = second.map { ($0.upperBound, reset ? $0.count : $0.count - (before[$0.upperBound] ?? 0)) }
    }

    public init(buckets: [(upperBound: Double, count: Double)]) { self.buckets = buckets }

    /// Observations in the window.
    public var count: Double { buckets.last?.count ?? 0 }

    /// The `q` quantile as Prometheus' `histogram_quantile` estimates it: linear within the
    /// bucket the rank falls in; the highest finite bound when it falls in `+Inf`. Nil when the
    /// window saw no observation ("no data").
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, buckets.count >= 2, buckets.last?.upperBound == .infinity else { return nil }
        let rank = q * count
        var lowerBound = 0.0, below = 0.0
        for (index, bucket) in buckets.enumerated() {
            if bucket.count >= rank {
                if bucket.upperBound == .infinity { return buckets[index - 1].upperBound }
                let inBucket = bucket.count - below
                if inBucket <= 0 { return bucket.upperBound }
                return lowerBound + (bucket.upperBound - lowerBound) * (rank - below) / inBucket
            }
            lowerBound = bucket.upperBound
            below = bucket.count
        }
        return buckets[buckets.count - 2].upperBound
    }
}
