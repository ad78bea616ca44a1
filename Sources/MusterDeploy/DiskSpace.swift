import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan

/// `disk-free`: room on each member's data dir's filesystem for its database to grow to the
/// cluster's `quota-backend-bytes`. etcd raises NOSPACE at the quota and keeps serving reads; a
/// filesystem that fills first stops the member mid-write instead.
enum DiskSpace {
    /// etcd's own when the inventory sets none (`DefaultQuotaBytes`, 2 GiB).
    static let defaultQuotaBytes: Int64 = 2 * 1024 * 1024 * 1024

    static func quotaBytes(of cluster: String, inventory: Inventory) -> Int64 {
        for option in inventory.cluster(named: cluster)?.etcdOptions ?? [] where option.key == "quota-backend-bytes" {
            switch option.value {
            case .int(let value) where value > 0: return Int64(value)
            case .float(let value) where value > 0: return Int64(value)
            case .string(let text): if let value = Int64(text), value > 0 { return value }
            default: break
            }
        }
        return defaultQuotaBytes
    }

    /// Warns naming each member whose filesystem has less free than the quota (from the facts'
    /// `df` of its data dir, or of its nearest existing parent before the first start).
    static func check(_ cluster: ClusterPlan, quota: Int64, facts: [String: HostFacts]) -> VerificationReport.Check {
        let threshold = MetricThresholds.diskFree
        var short: [String] = [], measured: [(String, Int64)] = []
        for member in cluster.members {
            guard let kilobytes = facts[member.host]?.freeKilobytesAt[member.paths.data] else { continue }
            let free = Int64(kilobytes) * 1024
            measured.append((member.name, free))
            if Double(free) < threshold.warn! * Double(quota) {
                short.append("\(member.name) on \(member.host) has \(HumanBytes.format(free)) free for \(member.paths.data)")
            }
        }
        let lines = "the database may grow to quota-backend-bytes \(HumanBytes.format(quota)) (warn when less is free)"
        guard !short.isEmpty else {
            let least = measured.min { $0.1 < $1.1 }.map { "; the least: \($0.0) with \(HumanBytes.format($0.1))" } ?? ""
            return .init(name: threshold.check, ok: true, severity: .warn,
                         detail: measured.isEmpty ? "no free space read" : "every member's filesystem has the quota free\(least); \(lines)")
        }
        return .init(name: threshold.check, ok: false, severity: .warn,
                     detail: short.joined(separator: ", ") + ": under the cluster's quota; free space there or lower quota-backend-bytes; " + lines)
    }
}
