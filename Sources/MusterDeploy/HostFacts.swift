import Foundation
import MusterBasics
import MusterInventory
import MusterPlan

/// What one host says about itself and about the members muster plans for it, gathered in a
/// single round trip so that preflight costs one channel per host.
struct HostFacts: Sendable {
    struct MemberFacts: Sendable {
        var hasData: Bool
        /// `CLUSTER NAME ID` as muster wrote it when it first started this member.
        var marker: String?
        var runningPid: Int32?
        var runningExe: String?
        /// Who keeps the running process now: after a change of the inventory's `supervisor:`
        /// it differs from the host's chosen one until the member is migrated.
        var runningVia: Supervisor?
        var configSHA: String?
        /// When the running process started, and when its config or certificates last changed
        /// (seconds since the epoch): a member started before its files changed runs on old
        /// ones, as after a run cut in the middle of a rolling restart.
        /// Seconds ago, from the host's own clocks (uptime for the process, the time of day for
        /// the files), to 10 ms.
        var startedSecondsAgo: Double?
        var filesChangedSecondsAgo: Double?

        var runsOnOlderFiles: Bool {
            guard let startedSecondsAgo, let filesChangedSecondsAgo else { return false }
            return filesChangedSecondsAgo < startedSecondsAgo - 0.1
        }
    }
    var architecture: String
    var hasSystemd: Bool
    /// The inventory's `supervisor:` for this host (set by `gathered(_:inventory:)`).
    var supervisorChoice: SupervisorChoice = .auto
    var hasDnsmasq: Bool
    /// Binaries travel compressed to hosts that can unpack them.
    var hasZstd = false
    var freeKilobytes: Int
    var listeningPorts: Set<Int>
    var members: [String: MemberFacts]  // by cluster name
    var hasEtcdUser = false
    /// sha256 and octal mode of every file muster would write on this host, as it is there now.
    var files: [String: (sha256: String, mode: String)] = [:]
    var existingDirectories: Set<String> = []
    /// Free kilobytes where each path muster writes would live (its nearest existing parent).
    var freeKilobytesAt: [String: Int] = [:]
    /// Mode (octal) and owner of each existing parent of the etcd user's directories.
    var directoryAccess: [String: (mode: Int, owner: String)] = [:]

    /// One shell script that prints `key value` lines; every path in it is quoted.
    static func script(for members: [MemberPlan], files: [String], directories: [String],
                       spaces: [String] = [], etcdReaches: [String] = []) -> String {
        var lines = [
            HostHashing.function,
            "echo arch $(uname -m)",
            "[ -d /run/systemd/system ] && echo systemd yes",
            "command -v dnsmasq >/dev/null 2>&1 && echo dnsmasq yes",
            "command -v zstd >/dev/null 2>&1 && echo zstd yes",
            "echo free $(df -Pk / | awk 'NR==2 {print $4}')",
            // ss asks the kernel for listening sockets only; reading /proc/net/tcp walks every
            // socket of every network namespace (measured: the costliest part of preflight).
            "if command -v ss >/dev/null 2>&1; then ss -Hltn | awk '{n = split($4, a, \":\"); print \"port\", a[n]}'; "
                + "else cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" {print \"listen\", $2}'; fi",
            "id -u etcd >/dev/null 2>&1 && echo etcduser yes",
        ]
        for path in files {
            let quoted = Shell.quote(path)
            lines.append("[ -f \(quoted) ] && echo file $(muster_sha256 \(quoted)) $(stat -c %a \(quoted)) \(quoted)")
        }
        for path in directories {
            lines.append("[ -d \(Shell.quote(path)) ] && echo dir \(Shell.quote(path))")
        }
        for path in spaces.uniqued() {
            lines.append("p=\(Shell.quote(path)); while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; echo space $(df -Pk \"$p\" | awk 'NR==2 {print $4}') \(Shell.quote(path))")
        }
        let parents = etcdReaches.flatMap { path -> [String] in
            var parents: [String] = [], current = (path as NSString).deletingLastPathComponent
            while current != "/" && !current.isEmpty {
                parents.append(current)
                current = (current as NSString).deletingLastPathComponent
            }
            return parents
        }.uniqued()
        for parent in parents {
            lines.append("[ -d \(Shell.quote(parent)) ] && echo dirmode $(stat -c '%a %U' \(Shell.quote(parent))) \(Shell.quote(parent))")
        }
        for member in members {
            let c = Shell.quote(member.cluster)
            let p = member.paths
            lines.append("[ -d \(Shell.quote(p.data + "/member")) ] && echo \(c) data yes")
            lines.append("[ -f \(Shell.quote(p.marker)) ] && echo \(c) marker $(cat \(Shell.quote(p.marker)))")
            lines.append(Supervisor.runningScript(member))
            lines.append("[ -f \(Shell.quote(p.config)) ] && echo \(c) confsha $(muster_sha256 \(Shell.quote(p.config)))")
            lines.append("[ -f \(Shell.quote(p.config)) ] && newest=$(ls -td \(Shell.quote(p.config)) \(Shell.quote(p.pkiDir))/* 2>/dev/null | head -n 1) && echo \(c) changedago $(awk -v n=\"$(date +%s.%N)\" -v m=\"$(date -r \"$newest\" +%s.%N)\" 'BEGIN {printf \"%.2f\", n - m}')")
        }
        return lines.map { "{ \($0); } 2>/dev/null" }.joined(separator: "\n") + "\ntrue\n"
    }

    static func parse(_ output: String) -> HostFacts {
        var facts = HostFacts(architecture: "", hasSystemd: false, hasDnsmasq: false, freeKilobytes: 0,
                              listeningPorts: [], members: [:])
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard words.count >= 2 else { continue }
            switch words[0] {
            case "arch": facts.architecture = words[1]
            case "systemd": facts.hasSystemd = true
            case "dnsmasq": facts.hasDnsmasq = true
            case "zstd": facts.hasZstd = true
            case "free": facts.freeKilobytes = Int(words[1]) ?? 0
            case "etcduser": facts.hasEtcdUser = true
            case "dir": facts.existingDirectories.insert(words[1])
            case "space":
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                if parts.count == 3, let free = Int(parts[1]) { facts.freeKilobytesAt[parts[2]] = free }
            case "dirmode":
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                if parts.count == 4, let mode = Int(parts[1], radix: 8) { facts.directoryAccess[parts[3]] = (mode, parts[2]) }
            case "file":
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                if parts.count == 4 { facts.files[parts[3]] = (parts[1], parts[2]) }
            case "port":
                if let port = Int(words[1]) { facts.listeningPorts.insert(port) }
            case "listen":
                if let portHex = words[1].split(separator: ":").last, let port = Int(portHex, radix: 16) {
                    facts.listeningPorts.insert(port)
                }
            default:
                guard words.count == 3 else { continue }
                var member = facts.members[words[0]] ?? MemberFacts(hasData: false)
                switch words[1] {
                case "data": member.hasData = true
                case "marker": member.marker = words[2]
                case "pid": member.runningPid = Int32(words[2])
                case "exe": member.runningExe = words[2]
                case "via": member.runningVia = Supervisor(rawValue: words[2])
                case "confsha": member.configSHA = words[2]
                case "startedago": member.startedSecondsAgo = Double(words[2])
                case "changedago": member.filesChangedSecondsAgo = Double(words[2])
                default: break
                }
                facts.members[words[0]] = member
            }
        }
        return facts
    }
}

extension MemberPlan {
    /// What muster writes beside the config when it first starts a member, so a later run
    /// can tell this member's data from another cluster's.
    var marker: String { "\(cluster) \(name) \(memberID.map(EtcdIDs.hex) ?? "unknown")" }
}

extension HostFacts {
    /// Each host's facts from its script's output, with the inventory's supervisor choice.
    static func gathered(_ outputs: [String: String], inventory: Inventory) -> [String: HostFacts] {
        Dictionary(uniqueKeysWithValues: outputs.map { host, output in
            var facts = parse(output)
            facts.supervisorChoice = inventory.supervisorChoice(on: host)
            return (host, facts)
        })
    }
}
