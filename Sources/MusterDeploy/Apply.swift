import Foundation
import MusterBasics
import MusterPlan

/// Everything a host needs for one wave of clusters, written by one shell command: the etcd user,
/// directories, the binary, and changed files (each written beside its target and renamed over
/// it, so a reader never sees half a file).
///
/// Every step is a simple command of its own: `set -e` ignores a failure inside `a && b` lists,
/// and a failed step must stop the script. Half-written temporaries are removed on exit.
struct ApplyScript {
    private var lines: [String] = []
    private var temporaries: [String] = []
    var isEmpty: Bool { lines.isEmpty }
    var bytes = 0
    private(set) var ensuresEtcdUser = false

    mutating func ensureEtcdUser(home: String) {
        ensuresEtcdUser = true
        lines.append("id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir \(Shell.quote(home)) --shell /usr/sbin/nologin etcd")
    }

    mutating func ensureDirectories(_ member: MemberPlan) {
        let p = member.paths
        lines.append("mkdir -p \(Shell.join([p.configDir, p.runDir, p.logDir]))")
        lines.append("[ -d \(Shell.quote(p.data)) ] || install -d -m 0700 -o etcd -g etcd \(Shell.quote(p.data))")
        lines.append("chown etcd:etcd \(Shell.quote(p.logDir))")
    }

    /// Takes a binary from the command's stdin: unpacked (zstd checks its frame checksum) or
    /// copied beside the target, then renamed, so the target is never half written. Reads all of
    /// stdin, so a script takes at most one binary.
    mutating func receive(_ delivery: BinaryDelivery) {
        let path = delivery.binary.remotePath
        temporaries.append(path + ".tmp.muster")
        let temporary = Shell.quote(path + ".tmp.muster")
        lines.append("mkdir -p \(Shell.quote((path as NSString).deletingLastPathComponent))")
        // A 1 MiB stdin pipe (F_SETPIPE_SZ; perl-base is on every Debian) lets sshd hand the
        // bytes straight over instead of growing and re-copying its own buffer while the
        // unpacker is busy: measured on the sandbox, the binary's transfer took half the time.
        lines.append("{ command -v perl >/dev/null 2>&1 && perl -e 'fcntl(STDIN, 1031, 1048576)' 2>/dev/null; true; }")
        lines.append("\(delivery.compressed ? "zstd -q -d -c" : "cat") > \(temporary)")
        lines.append("chmod 755 \(temporary)")
        lines.append("mv -f \(temporary) \(Shell.quote(path))")
    }

    mutating func write(_ file: RenderedFile) {
        temporaries.append(file.path + ".tmp.muster")
        let temporary = Shell.quote(file.path + ".tmp.muster")
        let encoded = Data(file.contents.utf8).base64EncodedString()
        bytes += file.contents.utf8.count
        lines.append("mkdir -p \(Shell.quote((file.path as NSString).deletingLastPathComponent))")
        lines.append("printf '%s' '\(encoded)' | base64 -d > \(temporary)")
        lines.append("chmod \(String(file.mode, radix: 8)) \(temporary)")
        if let owner = file.owner { lines.append("chown \(Shell.quote(owner)) \(temporary)") }
        lines.append("mv -f \(temporary) \(Shell.quote(file.path))")
    }

    var text: String {
        var script = ["set -e"]
        if !temporaries.isEmpty {
            script += ["cleanup() { rm -f -- \(Shell.join(temporaries)); }", "trap cleanup EXIT"]
        }
        return (script + lines).joined(separator: "\n") + "\n"
    }
}

extension RenderedFile {
    var sha256: String { Digest.sha256Hex(Data(contents.utf8)) }

    func isCurrent(on facts: HostFacts) -> Bool {
        guard let remote = facts.files[path] else { return false }
        return remote.sha256 == sha256 && remote.mode == String(mode, radix: 8)
    }
}
