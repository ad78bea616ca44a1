import Foundation
import MusterBasics
import MusterInventory
import MusterPlan
import MusterWorkspace

/// etcd's 3.5 -> 3.6 guide: 3.6 refuses to start on a v2store holding more than membership data,
/// which `etcdutl check v2store` (3.5.18+; the WAL too from 3.5.32) tells. It reads the member's
/// snapshot and WAL files only, so it runs beside the member, before any 3.6 member starts.
extension ClusterOperations {
    /// `etcdutl` (of the target version, shipped to each member's host) on every member's data
    /// dir: passed, or etcd's own words for the member.
    func checkV2Stores(_ cluster: ClusterPlan, etcdutl: ShippedBinary) async throws -> [String: UpgradeFacts.V2StoreCheck] {
        _ = try await ship(etcdutl, to: cluster.members.map(\.host).uniqued(), step: "upgrade")
        return try await withThrowingTaskGroup(of: (String, UpgradeFacts.V2StoreCheck).self) { group in
            for member in cluster.members {
                group.addTask {
                    let command = "\(Shell.quote(etcdutl.remotePath)) check v2store --data-dir \(Shell.quote(member.paths.data)) 2>&1"
                    let result = try await fleet.session(member.host).run(command, stdin: nil, timeout: 120, privileged: true)
                    let words = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
                    progress.host(member.host, "upgrade", "\(cluster.name): \(member.name): etcdutl check v2store: \(words)")
                    return (member.name, result.exitStatus == 0 ? .passed : .failed(words.isEmpty ? "exit status \(result.exitStatus)" : words))
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }
}

/// The target version's etcdutl on the controller, beside the cluster's `member.binary` (where
/// etcd's release tarball and Debian's etcd-server package put it), as shipped to the hosts.
enum UpgradeTool {
    static func etcdutl(_ workspace: Workspace, cluster: ClusterPlan) async throws -> ShippedBinary {
        let member = workspace.inventory.memberSettings(of: cluster.name)
        let local = (member.binary as NSString).deletingLastPathComponent + "/etcdutl"
        guard FileManager.default.isExecutableFile(atPath: local) else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "the upgrade to etcd \(cluster.memberVersion) checks every member's v2store with etcdutl \(cluster.memberVersion) first (etcd's 3.6 upgrade guide), but \(local) is missing: put etcdutl beside member.binary")
        }
        let said = try await LocalProcess.runOffPool([local, "version"], timeout: 20)
        let first = said.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
        guard let toolVersion = first.split(separator: " ").last.map(String.init), toolVersion == cluster.memberVersion else {
            throw InventoryError.at(member.mark, in: workspace.inventoryPath, "\(local) says '\(first)', not etcdutl \(cluster.memberVersion) like member.binary")
        }
        let remote = ((cluster.members.first?.paths.binary ?? workspace.inventory.paths.install) as NSString).deletingLastPathComponent
        var shipped = try ShippedBinary(localPath: local, remotePath: "\(remote)/etcdutl-\(toolVersion)")
        shipped.compressedPath = await BinaryCache.compressedCopy(of: shipped)
        return shipped
    }
}
