import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

/// `muster defrag`: every member's database rewritten to its size in use, one member at a time
/// with the leader last, each healthy again before the next. A member being defragmented
/// answers nothing, so every member must be running and healthy first: with one already down,
/// a second one busy would stall the cluster's writes.
public struct Defrag: Sendable {
    public var builder: PlanBuilder
    public var options: RunOptions
    public var progress: Progress
    /// Connect, refuse as the run would, list the steps in the order the run takes (the leader
    /// last, as it leads now); change nothing.
    public var dryRun = false

    public init(builder: PlanBuilder, options: RunOptions, progress: Progress) {
        self.builder = builder
        self.options = options
        self.progress = progress
    }

    public struct Row: Sendable, Equatable {
        public var member: String
        public var host: String
        public var bytesBefore: Int64
        public var bytesAfter: Int64
    }

    public struct Outcome: Sendable {
        public var cluster: String
        /// In the order defragmented (the leader last).
        public var members: [Row]
        /// Alarms still raised afterwards (`NOSPACE on host2`): defragmenting does not disarm them.
        public var alarms: [String]
    }

    /// The outcome; nil for a dry run.
    public func run() async throws -> Outcome? {
        let (workspace, cluster) = try await builder.loadSoleCluster(readOnly: dryRun)
        defer { workspace.state.unlock() }
        var options = options
        options.recordHostKeys = !dryRun
        return try await ClusterOperations.session(cluster, workspace: workspace, options: options, progress: progress) { operations -> Outcome? in
            let refuse = { (reason: String) in
                DeployError(host: nil, cluster: cluster.name, step: "defrag", kind: .refused,
                            "cluster '\(cluster.name)': defrag refused: \(reason); nothing was changed")
            }
            let down = cluster.members.filter { !operations.isRunning($0) }
            guard down.isEmpty else {
                throw refuse("\(down.map(\.name).joined(separator: ", ")) not running: a member being defragmented answers nothing, so every other one must be up")
            }
            if let unhealthy = try await operations.firstUnhealthy(cluster.members, of: cluster) {
                throw refuse("\(unhealthy.name) is not healthy")
            }
            let (order, _) = await operations.leaderLast(cluster.members, cluster: cluster)
            let steps = DefragSteps.plan(cluster, order: order)
            let runner = StepRunner(command: "defrag", progress: progress)
            if dryRun {
                runner.list(steps)
                return nil
            }
            var rows: [Row] = []
            try await runner.run(steps) { step in
                guard case .defragment(let member) = step.action else {
                    throw DeployError(host: nil, cluster: cluster.name, step: step.name, "defrag has no step \(step.name)")
                }
                let sizes = try await operations.defragment(member, cluster: cluster)
                rows.append(Row(member: member.name, host: member.host, bytesBefore: sizes.before, bytesAfter: sizes.after))
            }
            let alarms = await operations.activeAlarms(cluster)
            if !alarms.isEmpty {
                progress.note("cluster \(cluster.name): alarm still raised (\(alarms.joined(separator: ", "))): disarm it with `etcdctl alarm disarm` once space is free")
            }
            return Outcome(cluster: cluster.name, members: rows, alarms: alarms)
        }
    }
}
