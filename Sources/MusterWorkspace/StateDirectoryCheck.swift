import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// The state dir holds the cluster's CA, its records and backups, and a root run trusts what it
/// reads there: it must be the operator's alone. Refused, naming it: a state dir that is not a
/// directory (a symlink another user planted), is owned by another user, or that group or
/// others can write; a parent of it that group or others can write, unless its sticky bit is set
/// (as on /tmp: then only the state dir's owner can rename or remove it).
public enum StateDirectoryCheck {
    public static func check(_ directory: String) throws {
        let user = geteuid()
        var status = stat()
        if lstat(directory, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw refusal(directory, "is not a directory (a symbolic link or a file): muster keeps its state only in a directory of its own")
            }
            guard status.st_uid == user else {
                throw refusal(directory, "belongs to uid \(status.st_uid), not to uid \(user) running muster: another user could have written its CA, records or backups")
            }
            guard status.st_mode & 0o022 == 0 else {
                throw refusal(directory, "has mode \(String(status.st_mode & 0o7777, radix: 8)): group or others can write it (muster makes it 0700)")
            }
        }
        var parent = (directory as NSString).deletingLastPathComponent
        if parent.isEmpty { parent = "." }
        // The first ancestor that exists: the rest muster makes itself, mode 0700.
        while stat(parent, &status) != 0 && errno == ENOENT && parent != "/" && parent != "." {
            parent = (parent as NSString).deletingLastPathComponent
            if parent.isEmpty { parent = "." }
        }
        guard stat(parent, &status) == 0 else { return }
        if status.st_mode & 0o022 != 0 && status.st_mode & S_ISVTX == 0 {
            throw refusal(directory, "lies in \(parent), mode \(String(status.st_mode & 0o7777, radix: 8)), which group or others can write without the sticky bit: they could replace the state dir")
        }
    }

    static func refusal(_ directory: String, _ why: String) -> MusterError {
        MusterError(.input, "state dir \(directory) \(why); use a directory of your own (--state DIR)")
    }
}
