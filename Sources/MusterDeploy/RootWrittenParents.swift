import Foundation
import MusterPlan

/// Root writes the binaries, conf.yml, keys, the start script, the unit, dnsmasq's conf and the
/// restore's staging dir by path. A directory above one of them that another user may write
/// lets that user swap an entry for a link and aim root's write (or `chmod`, `chown`, `mv`)
/// anywhere: such a parent is refused before anything changes. The etcd user's own directories
/// (data, its log dir) and their parents are not root's to write: `/var/lib/etcd` owned by etcd,
/// as Debian's etcd package leaves it, is fine above a data dir.
extension Preflight {
    /// The paths root writes on a host for `members`, beside `files` (rendered files, binaries).
    static func rootWrittenPaths(files: [String], members: [MemberPlan]) -> [String] {
        (files + members.flatMap { member in
            [member.paths.binary, member.paths.etcdctl, member.paths.runDir, member.paths.caCert, member.paths.marker,
             member.paths.startScript, member.paths.unit, RestoreStaging.directory(of: member)]
        }).uniqued()
    }

    /// One line per parent directory of a root-written path that is not root's alone to write.
    static func writableParentProblems(_ host: String, _ facts: HostFacts, rootWrites: [String]) -> [String] {
        facts.directoryAccess.keys.sorted().compactMap { parent in
            guard let access = facts.directoryAccess[parent], access.owner != "root" || access.mode & 0o022 != 0,
                  let path = rootWrites.first(where: { $0.hasPrefix(parent + "/") }) else { return nil }
            let who = access.owner != "root" ? "its owner \(access.owner)" : access.mode & 0o002 != 0 ? "every user" : "its group"
            return "\(host): directory \(parent) (owner \(access.owner), mode \(String(access.mode, radix: 8))) can be written by \(who), and root writes \(path) under it: that user could put a link there and aim root's writes anywhere; make it root's alone (chown root \(parent); chmod go-w \(parent)) or point paths elsewhere; nothing was changed"
        }
    }

    /// What `judge` checks for each host: what `scripts` asked the parents of.
    static func rootWrittenPaths(on host: String, plan: Plan) -> [String] {
        let members = plan.clusters.flatMap { $0.members.filter { $0.host == host } }
        return rootWrittenPaths(files: plan.files.filter { $0.host == host }.map(\.path), members: members)
    }
}
