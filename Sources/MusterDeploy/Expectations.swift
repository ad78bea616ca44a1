import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterWorkspace

extension Workspace {
    /// What verification asserts about `cluster`: the IDs the state recorded when it formed (and
    /// for members added since), else the IDs the planner predicts.
    public func expectation(for cluster: ClusterPlan) throws -> ClusterExpectation {
        expectation(for: cluster, record: try state.clusterRecord(cluster.name))
    }

    /// The same from a record the caller read already.
    func expectation(for cluster: ClusterPlan, record: ClusterRecord?) -> ClusterExpectation {
        var expectation = cluster.expectation
        guard let record else { return expectation }
        if let id = UInt64(record.clusterID, radix: 16) { expectation.clusterID = id }
        let recorded = Dictionary(record.members.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        expectation.members = expectation.members.map { member in
            var member = member
            if let id = recorded[member.name].flatMap({ UInt64($0.id, radix: 16) }) { member.memberID = id }
            return member
        }
        return expectation
    }
}

extension Workspace {
    /// A key file the inventory names must exist before any host is contacted: bad input, with
    /// the host's place in the inventory (not a connect error per host, after the handshakes).
    func checkIdentityFiles(of hosts: [MusterInventory.Host]) throws {
        for host in hosts {
            guard let identity = host.ssh.identity else { continue }
            let path = expandTilde(identity)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw InventoryError.at(host.mark, in: inventoryPath, "host \(host.name): ssh identity \(identity) does not exist or cannot be read")
            }
        }
    }
}
