import Foundation
import MusterBasics
import MusterPlan

/// What `down --wipe-data` and `down --purge` remove of a member besides stopping it. Every path
/// is quoted (a glob only after a quoted prefix), and nothing follows a link: `rm` of a path that
/// is a link removes the link, and no path ends in a slash.
extension ClusterOperations {
    /// Muster's own copies of a member's keyspace beside its data dir: the old data a restore or
    /// a replace moved aside, a restore's unfinished work, the snapshot a restore placed there.
    static func copiesOfData(_ data: String) -> [String] {
        let quoted = Shell.quote(data)
        return ["\(quoted).muster-before-restore-*", "\(quoted).muster-replaced-*", "\(quoted).muster-restoring", "\(quoted).muster-restore-*.db"]
    }

    /// Every private key muster puts on a member's host: server, peer, the gateway's (etcd 3.5+)
    /// and the v3 discovery client's.
    static func privateKeys(_ paths: MemberPaths) -> [String] {
        [paths.serverKey, paths.peerKey, paths.gatewayKey, paths.discoveryKey]
    }

    /// Removes each of `words` (quoted paths, or globs after a quoted prefix) that exists, and
    /// says so: `removed PATH` per path.
    static func removeEach(_ words: [String]) -> String {
        "for f in \(words.joined(separator: " ")); do if [ -e \"$f\" ] || [ -L \"$f\" ]; then rm -rf -- \"$f\" && echo \"removed $f\"; fi; done"
    }

    /// The data a member of `cluster` with `paths` left on `host`, its copies and its private
    /// keys; with `purge`, every other file muster put there for the cluster too: config dir
    /// (conf.yml, certificates, start script, marker), unit, log dir, pidfile, and the installed
    /// binaries and the restore's staging dir when no other cluster's conf.yml is left on the host.
    func wipe(_ name: String, of cluster: String, paths: MemberPaths, on host: String, purge: Bool) async throws {
        let output = try await fleet.check(host, purge ? "purge" : "wipe", Self.wipeScript(paths: paths, purge: purge), timeout: 120)
        let said = output.split(separator: "\n").joined(separator: "; ")
        progress.host(host, purge ? "purge" : "wipe", "\(cluster): \(name): " + (said.isEmpty ? "nothing left to remove" : said))
    }

    /// A member of the cluster stopped (and disabled) and wiped in one command on its host.
    func stopAndWipe(_ member: MemberPlan, purge: Bool) async throws {
        let script = stopScript(member, wipe: true, disable: true) + "\n" + Self.wipeScript(paths: member.paths, purge: purge)
        let output = try await fleet.check(member.host, purge ? "purge" : "wipe", script, timeout: 120)
        let said = output.split(separator: "\n").joined(separator: "; ")
        progress.host(member.host, purge ? "purge" : "wipe", "\(member.cluster): \(member.name): stopped; " + said)
    }

    /// What `wipe` runs on the host.
    static func wipeScript(paths: MemberPaths, purge: Bool) -> String {
        let installDirectory = (paths.binary as NSString).deletingLastPathComponent
        let configRoot = (paths.configDir as NSString).deletingLastPathComponent
        var words = [Shell.quote(paths.data), Shell.quote(paths.marker)] + privateKeys(paths).map(Shell.quote)
            + copiesOfData(paths.data) + [RestoreStaging.leftovers(paths)]
        if purge {
            words += [Shell.quote(paths.configDir), Shell.quote(paths.logDir), Shell.quote(paths.pidfile), Shell.quote(paths.unit)]
        }
        var script = removeEach(words)
        if purge {
            let install = Shell.quote(installDirectory)
            script += """

            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
            others=""
            for c in \(Shell.quote(configRoot))/*/conf.yml; do [ -e "$c" ] && others="$others $(basename "$(dirname "$c")")"; done
            if [ -z "$others" ]; then
                \(removeEach(["\(install)/etcd-*", "\(install)/etcdctl-*", "\(install)/etcdutl-*", Shell.quote(RestoreStaging.directory(paths))]))
            else
                echo "binaries kept in \(installDirectory): other clusters here:$others"
            fi
            """
        }
        return script
    }
}
