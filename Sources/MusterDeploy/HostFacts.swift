import Foundation
import MusterBasics
import MusterInventory
import MusterPlan
import MusterWorkspace

/// What one host says about itself and about the members muster plans for it, gathered in a
/// single round trip so that preflight costs one channel per host.
struct HostFacts: Sendable {
    struct MemberFacts: Sendable {
        var hasData: Bool
        /// `CLUSTER NAME ID` as muster wrote it when it first started this member.
        var marker: String?
        /// The marker's further lines (none in markers of earlier muster versions): the cluster's
        /// incarnation, and the state dir that started the member.
        var markerIncarnation: String?
        var markerState: StateIdentity?
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
        /// The member's line of `Supervisor.stateScript`, as preflight found it.
        var supervisorState: String?
        var startedSecondsAgo: Double?
        var filesChangedSecondsAgo: Double?
        /// The raft index of the member's newest `.snap` file (etcd names them
        /// `%016x-%016x.snap`, term then index): what the 3.6 -> 3.7 rule asks.
        var newestSnapshotIndex: UInt64?

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
    /// By data dir: fdatasync latency measured on the filesystem of each data dir that held no
    /// data yet (asked by `measuringDisks`).
    var diskLatency: [String: DiskLatency.Measurement] = [:]

    /// One shell script that prints `key value` lines; every path in it is quoted.
    ///
    /// Facts about many paths are asked of one command each (one `stat`, one hash, one `df`
    /// for all of them) and the rest of builtins: every process a host starts costs it a few
    /// milliseconds, on every run (measured: 46 processes per host before, 13 now).
    static func script(for members: [MemberPlan], files: [String], directories: [String],
                       spaces: [String] = [], etcdReaches: [String] = [], measuringDisks: [String] = []) -> String {
        var lines = [
            HostHashing.eachFunction,
            "echo arch $(uname -m)",
            "[ -d /run/systemd/system ] && echo systemd yes",
            "command -v dnsmasq >/dev/null 2>&1 && echo dnsmasq yes",
            "command -v zstd >/dev/null 2>&1 && echo zstd yes",
            // ss asks the kernel for listening sockets only; reading /proc/net/tcp walks every
            // socket of every network namespace (measured: the costliest part of preflight).
            "if command -v ss >/dev/null 2>&1; then ss -Hltn | awk '{n = split($4, a, \":\"); print \"port\", a[n]}'; "
                + "else cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" {print \"listen\", $2}'; fi",
            "id -u etcd >/dev/null 2>&1 && echo etcduser yes",
        ]
        if !files.isEmpty {
            lines.append("set --; for f in \(Shell.join(files)); do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done; "
                + "[ $# -eq 0 ] || { stat -c 'fmode %a %n' -- \"$@\"; muster_sha256_each \"$@\"; }")
        }
        for path in directories {
            lines.append("[ -d \(Shell.quote(path)) ] && echo dir \(Shell.quote(path))")
        }
        // Free space at / and where each path would live (its nearest existing parent, found by
        // parameter expansion), from one df whose rows come in the order of its arguments.
        let spaces = spaces.uniqued()
        lines.append("set -- /; for p in \(Shell.join(spaces)); do echo spacefor \"$p\"; while [ ! -e \"$p\" ]; do p=${p%/*}; p=${p:-/}; done; set -- \"$@\" \"$p\"; done; "
            + "df -k --output=avail -- \"$@\" | { read -r _; while read -r a; do echo spaceavail \"$a\"; done; }")
        let parents = etcdReaches.flatMap { path -> [String] in
            var parents: [String] = [], current = (path as NSString).deletingLastPathComponent
            while current != "/" && !current.isEmpty {
                parents.append(current)
                current = (current as NSString).deletingLastPathComponent
            }
            return parents
        }.uniqued()
        if !parents.isEmpty {
            lines.append("set --; for d in \(Shell.join(parents)); do [ -d \"$d\" ] && set -- \"$@\" \"$d\"; done; "
                + "[ $# -eq 0 ] || stat -c 'dirmode %a %U %n' -- \"$@\"")
        }
        if !members.isEmpty {
            // The host's own clocks, once: a member's process start and its files' times are
            // turned into "seconds ago" from these by `parse`.
            lines += ["echo now $(date +%s.%N)", "read -r up _ < /proc/uptime && echo uptime $up",
                      "echo clktck $(getconf CLK_TCK)"]
        }
        for member in members {
            let c = Shell.quote(member.cluster)
            let p = member.paths
            lines.append("[ -d \(Shell.quote(p.data + "/member")) ] && echo \(c) data yes")
            // Names sort by term, then index: the last is the newest.
            lines.append("n=; for f in \(Shell.quote(p.data + "/member/snap"))/*.snap; do [ -f \"$f\" ] && n=${f##*/}; done; [ -n \"$n\" ] && echo \(c) snap \"$n\"")
            lines.append("{ read -r marker && echo \(c) marker \"$marker\"; while read -r key value; do case $key in incarnation|state) echo \(c) marker-$key \"$value\";; esac; done; } < \(Shell.quote(p.marker))")
            lines.append(Supervisor.runningScript(member))
            lines.append(Supervisor.stateLine(member, prefix: "\(member.cluster) supstate "))
            lines.append("[ -f \(Shell.quote(p.config)) ] && echo \(c) confsha $(muster_sha256_each \(Shell.quote(p.config)) | cut -d' ' -f2)")
            // The newest of the config and the certificates: a process that started before it
            // runs on older files.
            lines.append("[ -f \(Shell.quote(p.config)) ] && stat -c \(Shell.quote("\(member.cluster) mtime %.2Y")) -- \(Shell.quote(p.config)) \(Shell.quote(p.pkiDir))/*")
        }
        if !measuringDisks.isEmpty { lines.append(DiskLatency.script(dataDirectories: measuringDisks)) }
        return lines.map { "{ \($0); } 2>/dev/null" }.joined(separator: "\n") + "\ntrue\n"
    }

    static func parse(_ output: String) -> HostFacts {
        var facts = HostFacts(architecture: "", hasSystemd: false, hasDnsmasq: false, freeKilobytes: 0,
                              listeningPorts: [], members: [:])
        var modes: [String: String] = [:], sums: [String: String] = [:]
        var spaceFor: [String] = [], spaceAvail: [Int?] = []
        var clocks: [String: Double] = [:]
        var startTicks: [String: Double] = [:], newestFileTime: [String: Double] = [:]
        var disks = DiskLatency.Reader()
        for line in output.split(separator: "\n") {
            if line.hasPrefix("disk"), disks.read(line) { continue }
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard words.count >= 2 else { continue }
            switch words[0] {
            case "arch": facts.architecture = words[1]
            case "systemd": facts.hasSystemd = true
            case "dnsmasq": facts.hasDnsmasq = true
            case "zstd": facts.hasZstd = true
            case "etcduser": facts.hasEtcdUser = true
            case "dir": facts.existingDirectories.insert(String(line.dropFirst(4)))
            case "spacefor": spaceFor.append(String(line.dropFirst(9)))
            case "spaceavail": spaceAvail.append(Int(words[1]))
            case "now", "uptime", "clktck": clocks[words[0]] = Double(words[1])
            case "dirmode":
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                if parts.count == 4, let mode = Int(parts[1], radix: 8) { facts.directoryAccess[parts[3]] = (mode, parts[2]) }
            case "fmode":
                if words.count == 3 { modes[words[2]] = words[1] }
            case "fsum":
                if words.count == 3, words[1].count == 64 { sums[words[2]] = words[1] }
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
                case "marker-incarnation": member.markerIncarnation = words[2]
                case "marker-state":
                    let parts = words[2].split(separator: " ", maxSplits: 1).map(String.init)
                    member.markerState = StateIdentity(id: parts[0], directory: parts.count > 1 ? parts[1] : "")
                case "pid": member.runningPid = Int32(words[2])
                case "exe": member.runningExe = words[2]
                case "via": member.runningVia = Supervisor(rawValue: words[2])
                case "confsha": member.configSHA = words[2]
                case "snap":
                    let parts = words[2].dropLast(".snap".count).split(separator: "-")
                    if words[2].hasSuffix(".snap"), parts.count == 2 { member.newestSnapshotIndex = UInt64(parts[1], radix: 16) }
                case "supstate": member.supervisorState = words[2]
                case "startticks": startTicks[words[0]] = Double(words[2])
                case "mtime":
                    if let time = Double(words[2]) { newestFileTime[words[0]] = max(newestFileTime[words[0]] ?? time, time) }
                default: break
                }
                facts.members[words[0]] = member
            }
        }
        facts.diskLatency = disks.measurements
        for (path, sum) in sums { if let mode = modes[path] { facts.files[path] = (sum, mode) } }
        // df's first row is /; the others follow the paths in order. Rows missing (a df that
        // failed on one) leave every path without a figure rather than with another's.
        if let root = spaceAvail.first { facts.freeKilobytes = root ?? 0 }
        if spaceAvail.count == spaceFor.count + 1 {
            for (path, free) in zip(spaceFor, spaceAvail.dropFirst()) { if let free { facts.freeKilobytesAt[path] = free } }
        }
        // Seconds ago, to 10 ms, as the host's own clocks tell.
        func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
        if let uptime = clocks["uptime"], let ticks = clocks["clktck"], ticks > 0 {
            for (cluster, start) in startTicks { facts.members[cluster]?.startedSecondsAgo = rounded(uptime - start / ticks) }
        }
        if let now = clocks["now"] {
            for (cluster, time) in newestFileTime { facts.members[cluster]?.filesChangedSecondsAgo = rounded(now - time) }
        }
        return facts
    }
}

extension MemberPlan {
    /// What muster writes beside the config when it first starts a member, so a later run
    /// can tell this member's data from another cluster's.
    var marker: String { "\(cluster) \(name) \(memberID.map(EtcdIDs.hex) ?? "unknown")" }

    /// The whole marker: `marker`, then (read by muster since it wrote them; earlier versions
    /// read the first line only) `incarnation TOKEN` and `state ID PATH`.
    func markerLines(_ identity: MarkerIdentity?) -> [String] {
        guard let identity else { return [marker] }
        var lines = [marker]
        if let incarnation = identity.incarnation, StateIdentity.isToken(incarnation) { lines.append("incarnation \(incarnation)") }
        // A path with a line break would end the line early: named by its ID alone.
        let path = identity.state.directory.contains("\n") ? "" : " " + identity.state.directory
        if StateIdentity.isToken(identity.state.id) { lines.append("state \(identity.state.id)\(path)") }
        return lines
    }
}

/// What a run writes into the markers of the members it starts, beyond their IDs.
struct MarkerIdentity: Sendable {
    var incarnation: String?
    var state: StateIdentity

    /// What a run that changes a formed cluster (replace, restore) writes into its markers:
    /// this state, its identity made and kept if it has none, and the cluster's incarnation.
    /// `makingIncarnation`: a cluster an earlier muster recorded gets one, kept before any
    /// marker carries it, so that a cut run's next run writes the same.
    static func current(of cluster: String, in state: LocalState, makingIncarnation: Bool = false) throws -> MarkerIdentity {
        let (identity, identityIsNew) = try state.identityOrNew()
        if identityIsNew { try state.save(identity) }
        var incarnation = try state.incarnation(of: cluster)
        if incarnation == nil && makingIncarnation {
            let token = StateIdentity.newToken()
            try state.saveIncarnation(token, of: cluster)
            incarnation = token
        }
        return MarkerIdentity(incarnation: incarnation, state: identity)
    }
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
