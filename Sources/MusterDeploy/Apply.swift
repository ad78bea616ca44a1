import Foundation
import MusterBasics
import MusterPlan

/// Everything a host needs for one wave of clusters, written by one shell command: the etcd user,
/// directories, the binary, and changed files (each written beside its target and renamed over
/// it, so a reader never sees half a file).
///
/// Every step is a simple command of its own: `set -e` ignores a failure inside `a && b` lists,
/// and a failed step must stop the script. Half-written temporaries are removed on exit. Files
/// are written by the shell's own printf (private ones from stdin, see `input`), and directories, modes and owners are set once per
/// script rather than per file: every process a host starts costs a few milliseconds of the
/// cores the other hosts' transfers need (measured: a third of a 15-host bring-up's shell time).
struct ApplyScript {
    private var directories: [String] = []
    private var setup: [String] = []
    private var writes: [String] = []
    /// Private files (keys) read from stdin, before any binary: a process's argv is readable by
    /// every local user in /proc/PID/cmdline, and sudo logs the command it runs.
    private var secretWrites: [String] = []
    private var secretInput = Data()
    private var binaryPayload: Data?
    private var temporaries: [(temporary: String, target: String, mode: Int, owner: String?)] = []
    var isEmpty: Bool { directories.isEmpty && setup.isEmpty && writes.isEmpty && secretWrites.isEmpty }
    private(set) var fileCount = 0
    var bytes = 0
    /// About how long `text` is: a script travels as one argument of `sh -c`, which Linux caps
    /// at 128 KiB, so callers start another script well before that.
    private(set) var approximateLength = 200
    static let lengthLimit = 96 * 1024
    private(set) var ensuresEtcdUser = false

    mutating func ensureEtcdUser(home: String) {
        ensuresEtcdUser = true
        setup.append("id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir \(Shell.quote(home)) --shell /usr/sbin/nologin etcd")
    }

    mutating func ensureDirectories(_ member: MemberPlan) {
        let p = member.paths
        directories += [p.configDir, p.runDir, p.logDir]
        setup.append("[ -d \(Shell.quote(p.data)) ] || install -d -m 0700 -o etcd -g etcd \(Shell.quote(p.data))")
        // Only the cluster's own log directory changes owner, and `-h` never follows a link the
        // etcd user may have put there: root writes nothing in it (the etcd user opens its log).
        setup.append("chown -h etcd:etcd \(Shell.quote(p.logDir))")
    }

    /// Takes a binary from the command's stdin: unpacked (zstd checks its frame checksum) or
    /// copied beside the target, then renamed, so the target is never half written. Reads all of
    /// stdin, so a script takes at most one binary.
    mutating func receive(_ delivery: BinaryDelivery) {
        let path = delivery.binary.remotePath
        directories.append((path as NSString).deletingLastPathComponent)
        temporaries.append((path + ".tmp.muster", path, 0o755, nil))
        // A 1 MiB stdin pipe (F_SETPIPE_SZ; perl-base is on every Debian) lets sshd hand the
        // bytes straight over instead of growing and re-copying its own buffer while the
        // unpacker is busy: measured on the sandbox, the binary's transfer took half the time.
        writes.append("{ command -v perl >/dev/null 2>&1 && perl -e 'fcntl(STDIN, 1031, 1048576)' 2>/dev/null; true; }")
        binaryPayload = delivery.payload
        let temporary = Shell.quote(path + ".tmp.muster")
        writes.append("\(delivery.compressed ? "zstd -q -d -c" : "cat") > \(temporary)")
        // `cat` ends happily on a cut-off stream (a timeout, a dropped connection), and bytes
        // can be damaged on the way or in the controller's cache: the SHA-256 of what arrived
        // must be the binary's before the file may replace anything.
        let expected = Shell.quote(delivery.binary.sha256)
        writes.append(HostHashing.eachFunction)
        writes.append("received=$(muster_sha256_each \(temporary) | cut -d' ' -f2)")
        writes.append("[ \"$received\" = \(expected) ] || { printf '%s: received %s bytes with sha256 %s, expected %s bytes with sha256 %s; not installed\\n' \(Shell.quote(path)) \"$(wc -c < \(temporary))\" \"$received\" \(delivery.binary.size) \(expected) >&2; exit 1; }")
    }

    mutating func write(_ file: RenderedFile) {
        bytes += file.contents.utf8.count
        fileCount += 1
        directories.append((file.path as NSString).deletingLastPathComponent)
        temporaries.append((file.path + ".tmp.muster", file.path, file.mode, file.owner))
        if file.travelsOnStdin {
            // GNU head reads at most N bytes from a pipe, so the next file (or the binary) starts
            // right after this one on the same stdin.
            let temporary = Shell.quote(file.path + ".tmp.muster"), size = file.contents.utf8.count
            secretWrites.append("head -c \(size) > \(temporary)")
            secretWrites.append("[ \"$(wc -c < \(temporary))\" -eq \(size) ] || { printf '%s: stdin ended early\\n' \(Shell.quote(file.path)) >&2; exit 1; }")
            secretInput.append(Data(file.contents.utf8))
            approximateLength += 6 * file.path.utf8.count + 128
            return
        }
        let line = "printf '%s' \(Shell.quote(file.contents)) > \(Shell.quote(file.path + ".tmp.muster"))"
        writes.append(line)
        approximateLength += line.utf8.count + 4 * file.path.utf8.count + 64
    }

    var text: String {
        var script = ["set -e", "umask 022"]
        if !temporaries.isEmpty {
            script += ["cleanup() { rm -f -- \(Shell.join(temporaries.map(\.temporary))); }", "trap cleanup EXIT"]
        }
        if !directories.isEmpty { script.append("mkdir -p \(Shell.join(directories.uniqued()))") }
        script += setup
        // Written private, opened up only once complete: a key is never readable by others.
        script.append("umask 077")
        script += secretWrites + writes
        for mode in Set(temporaries.map(\.mode)).sorted() {
            script.append("chmod \(String(mode, radix: 8)) \(Shell.join(temporaries.filter { $0.mode == mode }.map(\.temporary)))")
        }
        for owner in Set(temporaries.compactMap(\.owner)).sorted() {
            script.append("chown \(Shell.quote(owner)) \(Shell.join(temporaries.filter { $0.owner == owner }.map(\.temporary)))")
        }
        script += temporaries.map { "mv -fT \(Shell.quote($0.temporary)) \(Shell.quote($0.target))" }
        return script.joined(separator: "\n") + "\n"
    }

    /// What the command running `text` must get on its stdin: the private files, then the binary.
    var input: Data? {
        guard !secretInput.isEmpty else { return binaryPayload }
        return secretInput + (binaryPayload ?? Data())
    }
}

extension RenderedFile {
    /// Not for everyone's eyes (a private key, a conf.yml with a discovery token): its bytes
    /// travel on the apply command's stdin and never appear in a command line (which sudo logs
    /// and every local user can read in /proc).
    var travelsOnStdin: Bool { mode & 0o007 == 0 }

    var sha256: String { Digest.sha256Hex(Data(contents.utf8)) }

    func isCurrent(on facts: HostFacts) -> Bool {
        guard let remote = facts.files[path] else { return false }
        return remote.sha256 == sha256 && remote.mode == String(mode, radix: 8)
    }
}
