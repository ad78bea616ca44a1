import Testing
@testable import MusterPlan

/// Notes of the plan: what the operator should know of a cluster, printed by `render` and `up`.
@Suite struct PlanNotesTests {
    /// etcd's v2 discovery client offers no certificate and no credentials, so its backend's
    /// client port is open to whoever reaches it: every plan of such a backend says so.
    @Test func aV2DiscoveryBackendIsNamedAsOpenAndOnlyIt() throws {
        let (_, clusters, _) = try renderSeed("seed-discovery")
        let backend = try #require(clusters.first { $0.servesV2Discovery })
        #expect(PlanSummary.notes(backend).contains { $0.contains("whoever reaches it reads and writes every key") })
        for cluster in clusters where !cluster.servesV2Discovery {
            #expect(!PlanSummary.notes(cluster).contains { $0.contains("v2 discovery") }, "\(cluster.name)")
        }
        let (_, statics, _) = try renderSeed("seed-static")
        #expect(statics.allSatisfy { PlanSummary.notes($0).allSatisfy { !$0.contains("v2 discovery") } })
    }
}
