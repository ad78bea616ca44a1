import Foundation
import MusterBasics
import MusterEtcd

/// `clock-skew`: each host's clock against the controller's, read over the SSH session muster
/// already holds. etcd leans on its members agreeing about time (leases, and its peer prober
/// logs "clock drift" above 1 s), so a host that disagrees by a second fails.
enum ClockSkew {
    /// Beyond these many seconds apart: a warning, a failure (`MetricThresholds.clockSkew`).
    static let warnSeconds = MetricThresholds.clockSkew.warn!
    static let failSeconds = MetricThresholds.clockSkew.fail!

    struct Reading: Sendable {
        var host: String
        /// The host's clock minus the controller's, in seconds; nil when it could not be read.
        var offset: Double?
        /// The round trip of the best read (the offset is known to within half of it).
        var roundTrip: Double
        var error: String?
    }

    /// Three reads per host (hosts in parallel), each the host's `date` against the
    /// controller's clock at the midpoint of its round trip; the read with the shortest round
    /// trip counts.
    static func measure(_ hosts: [String], fleet: Fleet) async -> [Reading] {
        await withTaskGroup(of: (Int, Reading).self) { group in
            for (index, host) in hosts.enumerated() {
                group.addTask {
                    var best: Reading?
                    for _ in 0..<3 {
                        let sent = Date()
                        do {
                            let result = try await fleet.session(host).run("date +%s.%N", timeout: 10)
                            let received = Date()
                            guard result.succeeded, let clock = Double(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                                return (index, Reading(host: host, offset: nil, roundTrip: 0,
                                                       error: "`date +%s.%N` said \(result.stdoutText.prefix(80)) \(result.stderrText.prefix(80))"))
                            }
                            let roundTrip = received.timeIntervalSince(sent)
                            let midpoint = sent.timeIntervalSince1970 + roundTrip / 2
                            if best == nil || roundTrip < best!.roundTrip {
                                best = Reading(host: host, offset: clock - midpoint, roundTrip: roundTrip)
                            }
                        } catch {
                            return (index, Reading(host: host, offset: nil, roundTrip: 0, error: "\(error)"))
                        }
                    }
                    return (index, best!)
                }
            }
            var readings = [Reading?](repeating: nil, count: hosts.count)
            for await (index, reading) in group { readings[index] = reading }
            return readings.compactMap { $0 }
        }
    }

    static func check(_ readings: [Reading]) -> VerificationReport.Check {
        var parts: [String] = [], worst = 0
        for reading in readings {
            guard let offset = reading.offset else {
                parts.append("\(reading.host) unread (\(reading.error ?? "no answer"))")
                worst = max(worst, 1)
                continue
            }
            parts.append(String(format: "%@ %+.3f s (±%.0f ms)", reading.host, offset, reading.roundTrip / 2 * 1000))
            if abs(offset) > failSeconds { worst = 2 } else if abs(offset) > warnSeconds { worst = max(worst, 1) }
        }
        let lines = String(format: "host clock minus the controller's; warn beyond %.1f s, fail beyond %.1f s", warnSeconds, failSeconds)
        let detail = (parts.isEmpty ? "no host" : parts.joined(separator: ", ")) + "; " + lines
        return .init(name: "clock-skew", ok: worst == 0, severity: worst == 1 ? .warn : .fail, detail: detail)
    }
}
