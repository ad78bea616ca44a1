import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan

/// Alarms and defragmentation: a cluster with an active alarm is not changed, and its database
/// is compacted on disk one member at a time.
extension ClusterOperations {
    /// The alarms raised in `cluster` as `ALARM on MEMBER`, read from the first running member
    /// that answers; empty when none answers (the health checks then speak for the cluster).
    func activeAlarms(_ cluster: ClusterPlan) async -> [String] {
        (try? await withEndpoints(cluster) { endpoints -> [String] in
            for member in runningMembers(cluster) {
                let client = endpoints.client(for: member, timeout: 3)
                guard let alarms = try? await client.alarms() else { continue }
                guard !alarms.isEmpty else { return [] }
                let names = Dictionary(((try? await client.memberList().members) ?? []).map { ($0.id, $0.name) },
                                       uniquingKeysWith: { first, _ in first })
                return alarms.map { "\($0.alarm) on \(names[$0.memberID].map { $0.isEmpty ? "an unstarted member" : $0 } ?? EtcdIDs.hex($0.memberID))" }
            }
            return []
        }) ?? []
    }

    /// A restart, a membership change or an upgrade of a cluster with an active alarm could
    /// not finish (NOSPACE refuses writes, CORRUPT means a member's data differs): refused,
    /// naming the alarm, before anything is changed.
    func refuseChangeUnderAlarm(_ cluster: ClusterPlan, change: String) async throws {
        let alarms = await activeAlarms(cluster)
        guard !alarms.isEmpty else { return }
        throw DeployError(host: nil, cluster: cluster.name, step: "alarm", kind: .refused,
                          "cluster '\(cluster.name)' has an active alarm (\(alarms.joined(separator: ", "))): refused to \(change); nothing was changed. "
                          + "For NOSPACE free space first (compact, then `muster defrag`), then disarm it with `etcdctl alarm disarm` (see `muster env`); for CORRUPT replace the member whose data differs (`muster replace`)")
    }

    /// Rewrites `member`'s database to its size in use, then waits (bounded) until it answers
    /// healthy again. Returns the database size before and after.
    func defragment(_ member: MemberPlan, cluster: ClusterPlan) async throws -> (before: Int64, after: Int64) {
        try await withEndpoints(cluster) { endpoints in
            let before = try await statusOrFail(member, cluster: cluster, endpoints: endpoints)
            progress.host(member.host, "defrag", "\(cluster.name): defragmenting \(member.name) (\(before.dbSize) bytes, \(before.dbSizeInUse) in use)")
            do {
                // The member answers nothing else meanwhile; a large database takes a while.
                try await endpoints.client(for: member, timeout: 300).defragment()
            } catch {
                throw DeployError(host: member.host, cluster: cluster.name, step: "defrag", "\(member.name): defragment failed: \(error)")
            }
            try await waitHealthy(ClusterPlan(copying: cluster, members: [member]))
            let after = try await statusOrFail(member, cluster: cluster, endpoints: endpoints)
            progress.host(member.host, "defrag", "\(cluster.name): \(member.name) \(before.dbSize) -> \(after.dbSize) bytes")
            return (before.dbSize, after.dbSize)
        }
    }

    private func statusOrFail(_ member: MemberPlan, cluster: ClusterPlan, endpoints: Endpoints) async throws -> EndpointStatus {
        do {
            return try await endpoints.client(for: member, timeout: 5).status()
        } catch {
            throw DeployError(host: member.host, cluster: cluster.name, step: "defrag", "\(member.name) does not answer: \(error)")
        }
    }
}
