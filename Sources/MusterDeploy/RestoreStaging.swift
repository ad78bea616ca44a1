import Foundation
import MusterBasics
import MusterPlan

/// Where a restore keeps its snapshot on a host: a directory root alone may enter (0700, owned
/// by root) beside the installed binaries, so that the file whose sha256 was checked is the file
/// the restore tool reads (beside the data dir, in a directory the etcd user may own, it could
/// be swapped between the two, and the upload's rename aimed through a link).
enum RestoreStaging {
    static func directory(of member: MemberPlan) -> String { directory(member.paths) }

    static func directory(_ paths: MemberPaths) -> String {
        (paths.etcdctl as NSString).deletingLastPathComponent + "/.muster-restore"
    }

    /// `CLUSTER@SHA256PREFIX.db` (no cluster name holds `@`), so that a wipe of one cluster finds
    /// its own copies alone.
    static func snapshot(of member: MemberPlan, sha256: String) -> String {
        directory(member.paths) + "/\(member.cluster)@\(sha256.prefix(16)).db"
    }

    /// The copies a cut restore of the cluster whose member has `paths` left (a glob after a
    /// quoted prefix).
    static func leftovers(_ paths: MemberPaths) -> String {
        Shell.quote(directory(paths) + "/" + (paths.data as NSString).lastPathComponent + "@") + "*.db"
    }

    /// Makes the directory (never through a link), after checking that no directory above it is
    /// anyone's but root's to write; fails naming the first that is.
    static func prepareScript(_ directory: String) -> String {
        let quoted = Shell.quote(directory)
        return """
        set -e
        d=\(quoted)
        while d=${d%/*}; [ -n "$d" ]; do
            [ -d "$d" ] || continue
            set -- $(stat -L -c '%u %a %U' -- "$d")
            if [ "$1" != 0 ] || [ $(( 0$2 & 022 )) -ne 0 ]; then
                echo "directory $d (owner $3, mode $2) can be written by another user than root, and root keeps the restore's snapshot under it (\(directory)): make it root's alone (chown root $d; chmod go-w $d); nothing was changed" >&2; exit 1
            fi
        done
        if [ -L \(quoted) ]; then echo \(Shell.quote("\(directory) is a symbolic link; nothing was changed")) >&2; exit 1; fi
        mkdir -p -m 0700 \(quoted)
        chown -h root:root \(quoted)
        chmod 0700 \(quoted)
        """
    }
}
