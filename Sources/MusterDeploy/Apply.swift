import Foundation
import MusterBasics
import MusterPlan

/// The member binary (and etcdctl) as shipped: hashed once per run, staged on each host that
/// lacks it over SFTP, put in place by the host's apply script.
struct ShippedBinary: Sendable {
    var localPath: String
    var remotePath: String
    var sha256: String
    var size: Int
    init(localPath: String, remotePath: String) throws {
        self.localPath = localPath
        self.remotePath = remotePath
        sha256 = try Digest.sha256Hex(fileAt: localPath)
        size = (try FileManager.default.attributesOfItem(atPath: localPath)[.size] as? Int) ?? 0
    }

    func isCurrent(on facts: HostFacts) -> Bool {
        facts.files[remotePath]?.sha256 == sha256 && facts.files[remotePath]?.mode == "755"
    }
}

/// Everything a host needs for one cluster, written by one shell command: the etcd user,
/// directories, staged binaries moved into place, and changed files (each written beside its
/// target and renamed over it, so a reader never sees half a file).
struct ApplyScript {
    var lines: [String] = ["set -e"]
    var isEmpty: Bool { lines.count == 1 }
    var bytes = 0

    mutating func ensureEtcdUser(home: String) {
        lines.append("id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir \(Shell.quote(home)) --shell /usr/sbin/nologin etcd")
    }

    mutating func ensureDirectories(_ member: MemberPlan) {
        let p = member.paths
        lines.append("mkdir -p \(Shell.join([p.configDir, p.runDir, p.logDir]))")
        lines.append("[ -d \(Shell.quote(p.data)) ] || install -d -m 0700 -o etcd -g etcd \(Shell.quote(p.data))")
        lines.append("chown etcd:etcd \(Shell.quote(p.logDir))")
    }

    /// `staged` is where SFTP put the binary (in /tmp): copied beside the target, then renamed,
    /// so the target is never half written even when /tmp is another filesystem.
    mutating func place(staged: String, at path: String) {
        let temporary = Shell.quote(path + ".tmp.muster")
        lines.append("mkdir -p \(Shell.quote((path as NSString).deletingLastPathComponent))")
        lines.append("cp \(Shell.quote(staged)) \(temporary) && rm -f \(Shell.quote(staged)) && chmod 755 \(temporary) && mv -f \(temporary) \(Shell.quote(path))")
    }

    mutating func write(_ file: RenderedFile) {
        let temporary = Shell.quote(file.path + ".tmp.muster")
        let encoded = Data(file.contents.utf8).base64EncodedString()
        bytes += file.contents.utf8.count
        lines.append("mkdir -p \(Shell.quote((file.path as NSString).deletingLastPathComponent))")
        let owner = file.owner.map { " && chown \(Shell.quote($0)) \(temporary)" } ?? ""
        lines.append("printf '%s' '\(encoded)' | base64 -d > \(temporary) && chmod \(String(file.mode, radix: 8)) \(temporary)\(owner) && mv -f \(temporary) \(Shell.quote(file.path))")
    }

    var text: String { lines.joined(separator: "\n") + "\n" }
}

extension RenderedFile {
    var sha256: String { Digest.sha256Hex(Data(contents.utf8)) }

    func isCurrent(on facts: HostFacts) -> Bool {
        guard let remote = facts.files[path] else { return false }
        return remote.sha256 == sha256 && remote.mode == String(mode, radix: 8)
    }
}
