import Foundation
import MusterBasics
import MusterPlan

extension ClusterOperations {
    /// etcd ignores name, initial cluster, token, bootstrap mode and peer URLs once it has data;
    /// keeping a running member on an old file while claiming success would be a lie.
    func refuseIgnoredChanges(_ cluster: ClusterPlan, changed files: [RenderedFile], running: [MemberPlan]) async throws {
        for member in running {
            guard let file = files.first(where: { $0.host == member.host && $0.path == member.paths.config }) else { continue }
            let current = try await fleet.check(member.host, "config", "cat \(Shell.quote(member.paths.config))")
            // A member whose address changed gets its peer URLs through `member update`.
            let ignored = ConfigChange.keysEtcdIgnores(from: current, to: file.contents)
                .filter { !(member.formerPeerURL != nil && $0 == "initial-advertise-peer-urls") }
            guard ignored.isEmpty else {
                throw DeployError(host: member.host, cluster: cluster.name, step: "config", kind: .refused,
                                  "conf.yml of running member \(member.name) of cluster '\(cluster.name)' changes \(ignored.joined(separator: ", ")), which etcd ignores once a member has data; nothing was written. To really change them the cluster must be rebuilt (`muster down --wipe-data`, then `up`: its keys are lost) or reconfigured by hand (etcdctl member update/add/remove)")
            }
        }
    }
}
