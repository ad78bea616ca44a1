import Foundation
import MusterPlan
import MusterWorkspace

/// What one way of forming a cluster does around the common steps of a bring-up and a
/// teardown. Each mode lives in a file of its own; `mode(for:)` is the one switch over
/// `BootstrapPlan`, so a new mode is a case there, a file here and its templates' keys.
protocol BootstrapMode: Sendable {
    /// Whether `beforeStart` needs every host of the cluster to have its files (DNS records
    /// are served and resolved on all of them), rather than each member's own host.
    var needsEveryHostBeforeStart: Bool { get }
    /// Before any host is contacted: tokens the plan needs that only the network can give.
    /// Returns the workspace replanned, or the same one.
    func prepare(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext) async throws -> Workspace
    /// Once the backend is up and the hosts' facts are known, before files are written: a token
    /// that is spent is replaced.
    func refresh(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                 operations: ClusterOperations) async throws -> Workspace
    /// After the files are on the hosts, before the first member starts.
    func beforeStart(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                     operations: ClusterOperations) async throws
    /// Once the cluster answered healthy: its founding is history.
    func afterFormed(_ cluster: ClusterPlan, in workspace: inout Workspace, context: BootstrapContext) async throws
    /// `down`: what the mode set up besides the members.
    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws
}

/// What a mode may need of the run around it.
struct BootstrapContext: Sendable {
    var options: RunOptions
    var progress: Progress
    var dryRun: Bool
}

extension BootstrapMode {
    var needsEveryHostBeforeStart: Bool { false }
    func prepare(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext) async throws -> Workspace { workspace }
    func refresh(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                 operations: ClusterOperations) async throws -> Workspace { workspace }
    func beforeStart(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                     operations: ClusterOperations) async throws {}
    func afterFormed(_ cluster: ClusterPlan, in workspace: inout Workspace, context: BootstrapContext) async throws {}
    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws {}
}

func mode(for cluster: ClusterPlan) -> any BootstrapMode {
    switch cluster.bootstrap {
    case .staticCluster: return StaticBootstrap()
    case .discovery(let discovery): return DiscoveryBootstrap(discovery: discovery)
    case .discoveryV3(let discovery): return DiscoveryV3Bootstrap(discovery: discovery)
    case .dns(let dns, _): return DNSBootstrap(dns: dns)
    }
}
