import Foundation
import MusterBasics

/// Two reads of one member's `/metrics`, `window` apart.
public struct MemberMetrics: Sendable {
    public var name: String
    public var first: Result<MetricSample, EtcdClientError>
    public var second: Result<MetricSample, EtcdClientError>
    public var window: Duration

    public init(name: String, first: Result<MetricSample, EtcdClientError>,
                second: Result<MetricSample, EtcdClientError>, window: Duration) {
        self.name = name; self.first = first; self.second = second; self.window = window
    }

    /// Reads every member's metrics, waits `window`, reads them again (members in parallel).
    public static func sample(_ members: [(name: String, client: EtcdClient)], window: Duration) async -> [MemberMetrics] {
        func readAll() async -> [(Result<MetricSample, EtcdClientError>, ContinuousClock.Instant)] {
            await withTaskGroup(of: (Int, Result<MetricSample, EtcdClientError>, ContinuousClock.Instant).self) { group in
                for (index, member) in members.enumerated() {
                    group.addTask {
                        let result = await Verifier.result { () async throws(EtcdClientError) in
                            MetricSample(parsing: try await member.client.metrics())
                        }
                        return (index, result, ContinuousClock.now)
                    }
                }
                var collected = [(Result<MetricSample, EtcdClientError>, ContinuousClock.Instant)?](repeating: nil, count: members.count)
                for await (index, result, at) in group { collected[index] = (result, at) }
                return collected.map { $0! }
            }
        }
        let first = await readAll()
        try? await Task.sleep(for: window)
        let second = await readAll()
        return members.indices.map { index in
            MemberMetrics(name: members[index].name, first: first[index].0, second: second[index].0,
                          window: second[index].1 - first[index].1)
        }
    }
}

/// The metric checks, each naming every member with its measured value and the lines it is
/// held to (`MetricThresholds`).
public struct MetricChecks {
    public let members: [MemberMetrics]
    /// Member names by ID (hex, as etcd labels its peers `To`), to name a peer.
    public let peerNames: [String: String]

    public init(members: [MemberMetrics], peerNames: [String: String] = [:]) {
        self.members = members; self.peerNames = peerNames
    }

    public typealias Check = VerificationReport.Check

    public func all() -> [Check] {
        [quantileCheck(MetricThresholds.walFsync, what: "fsyncs"),
         quantileCheck(MetricThresholds.backendCommit, what: "commits"),
         quota(), fragmentation(), leaderChanges(), proposalsFailed(), peerRoundTrip()]
    }

    /// One member's verdict.
    struct Measure {
        enum Level: Int, Comparable {
            case pass, warn, fail
            static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        }
        var text: String
        var level: Level
    }

    static func level(_ value: Double, _ threshold: MetricThreshold) -> Measure.Level {
        if let fail = threshold.fail, value > fail { return .fail }
        if let warn = threshold.warn, value > warn { return .warn }
        return .pass
    }

    /// Combines members' measures into the check; a member whose metrics could not be read
    /// warns (the checks that need its status already fail when it does not answer).
    func combine(_ threshold: MetricThreshold, lines: String,
                 _ measure: (MetricSample, MetricSample, MemberMetrics) -> Measure) -> Check {
        var measures: [Measure] = []
        for member in members {
            switch (member.first, member.second) {
            case (.success(let first), .success(let second)):
                var result = measure(first, second, member)
                result.text = "\(member.name) \(result.text)"
                measures.append(result)
            case (.failure(let error), _), (_, .failure(let error)):
                measures.append(Measure(text: "\(member.name) no metrics (\(error.message))", level: .warn))
            }
        }
        let worst = measures.map(\.level).max() ?? .pass
        let detail = (measures.isEmpty ? "no member" : measures.map(\.text).joined(separator: ", ")) + "; " + lines
        // A passing check carries the most its failure could be: `warn` for one without a fail line.
        let severity: VerificationReport.Severity = worst == .fail || (worst == .pass && threshold.fail != nil) ? .fail : .warn
        return Check(name: threshold.check, ok: worst == .pass, severity: severity, detail: detail)
    }

    static func milliseconds(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
    static func seconds(_ window: Duration) -> String { String(format: "%.1f s", Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18) }
    static func percent(_ fraction: Double) -> String { String(format: "%.1f%%", fraction * 100) }

    func quantileCheck(_ threshold: MetricThreshold, what: String) -> Check {
        let lines = "p99 over the window; warn > \(MetricChecks.milliseconds(threshold.warn!)), fail > \(MetricChecks.milliseconds(threshold.fail!))"
        return combine(threshold, lines: lines) { first, second, member in
            let before = first.histograms(threshold.metric)[[:]] ?? []
            guard let after = second.histograms(threshold.metric)[[:]] else {
                return Measure(text: "no \(threshold.metric) metric", level: .warn)
            }
            let window = HistogramWindow(from: before, to: after)
            guard let p99 = window.quantile(0.99) else {
                return Measure(text: "no data (no \(what) in \(MetricChecks.seconds(member.window)))", level: .pass)
            }
            return Measure(text: "p99 \(MetricChecks.milliseconds(p99)) (\(Int(window.count)) \(what) in \(MetricChecks.seconds(member.window)))",
                           level: MetricChecks.level(p99, threshold))
        }
    }

    func quota() -> Check {
        let threshold = MetricThresholds.quota
        let lines = "database size over quota-backend-bytes; warn > \(MetricChecks.percent(threshold.warn!)), fail > \(MetricChecks.percent(threshold.fail!))"
        return combine(threshold, lines: lines) { _, second, _ in
            guard let size = second.value(threshold.metric), let quota = second.value("etcd_server_quota_backend_bytes"), quota > 0 else {
                return Measure(text: "no \(threshold.metric) or etcd_server_quota_backend_bytes", level: .warn)
            }
            let fraction = size / quota
            return Measure(text: "\(HumanBytes.format(Int64(size))) of \(HumanBytes.format(Int64(quota))) (\(MetricChecks.percent(fraction)))",
                           level: MetricChecks.level(fraction, threshold))
        }
    }

    func fragmentation() -> Check {
        let threshold = MetricThresholds.fragmentation, floor = MetricThresholds.fragmentationFloorBytes
        let lines = "warn when under \(MetricChecks.percent(threshold.warn!)) of a database over \(Int(floor) >> 20) MiB is in use: `muster defrag` gives the rest back"
        return combine(threshold, lines: lines) { _, second, _ in
            guard let size = second.value("etcd_mvcc_db_total_size_in_bytes"), let inUse = second.value(threshold.metric), size > 0 else {
                return Measure(text: "no etcd_mvcc_db_total_size_in_bytes or \(threshold.metric)", level: .warn)
            }
            let fraction = inUse / size
            let fragmented = size > floor && fraction < threshold.warn!
            return Measure(text: "\(HumanBytes.format(Int64(inUse))) of \(HumanBytes.format(Int64(size))) in use (\(MetricChecks.percent(fraction)))",
                           level: fragmented ? .warn : .pass)
        }
    }

    /// A counter's increase between the samples (from zero after a restart).
    static func increase(_ name: String, _ first: MetricSample, _ second: MetricSample) -> Double? {
        guard let after = second.value(name) else { return nil }
        let before = first.value(name) ?? 0
        return after >= before ? after - before : after
    }

    func leaderChanges() -> Check {
        let threshold = MetricThresholds.leaderChanges
        return combine(threshold, lines: "warn on any leader change while verify watched") { first, second, member in
            guard let increase = MetricChecks.increase(threshold.metric, first, second) else {
                return Measure(text: "no \(threshold.metric)", level: .warn)
            }
            return Measure(text: "\(Int(increase)) in \(MetricChecks.seconds(member.window)) (\(Int(second.value(threshold.metric) ?? 0)) since start)",
                           level: MetricChecks.level(increase, threshold))
        }
    }

    func proposalsFailed() -> Check {
        let threshold = MetricThresholds.proposalsFailed
        return combine(threshold, lines: "warn above \(Int(threshold.warn!)) per second") { first, second, member in
            guard let increase = MetricChecks.increase(threshold.metric, first, second) else {
                return Measure(text: "no \(threshold.metric)", level: .warn)
            }
            let seconds = max(Double(member.window.components.seconds) + Double(member.window.components.attoseconds) / 1e18, 0.001)
            let rate = increase / seconds
            return Measure(text: String(format: "%.2f/s (%d in %@)", rate, Int(increase), MetricChecks.seconds(member.window)),
                           level: MetricChecks.level(rate, threshold))
        }
    }

    func peerRoundTrip() -> Check {
        let threshold = MetricThresholds.peerRoundTrip
        let lines = "p99 over the window; warn > \(MetricChecks.milliseconds(threshold.warn!))"
        return combine(threshold, lines: lines) { first, second, member in
            let before = first.histograms(threshold.metric), after = second.histograms(threshold.metric)
            var parts: [String] = [], level = Measure.Level.pass
            for labels in after.keys.sorted(by: { ($0["To"] ?? "") < ($1["To"] ?? "") }) {
                let window = HistogramWindow(from: before[labels] ?? [], to: after[labels]!)
                let peer = labels["To"].map { peerNames[$0] ?? $0 } ?? "a peer"
                guard let p99 = window.quantile(0.99) else { parts.append("to \(peer) no data"); continue }
                parts.append("to \(peer) p99 \(MetricChecks.milliseconds(p99))")
                level = max(level, MetricChecks.level(p99, threshold))
            }
            if parts.isEmpty { return Measure(text: "no peers measured", level: .pass) }
            return Measure(text: parts.joined(separator: ", ") + " in \(MetricChecks.seconds(member.window))", level: level)
        }
    }
}
