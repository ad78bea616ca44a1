import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// Hosts with systemd as pid 1 (`--init systemd`): the same overlay root, network namespace,
/// addresses, client key and host key as a host without init, booted by `systemd-nspawn --boot`
/// under a loop that boots it again when it reboots.
enum SystemdHost {
    static let nspawn = "/usr/bin/systemd-nspawn"
    /// nspawn's exit status when the container asked for a reboot.
    static let rebootStatus = 133
    /// A host that reboots more often than this in one sandbox's life stays down.
    static let maxBoots = 100

    // MARK: the host's files

    /// The machine's own units that a fresh host would not run: every unit the controller enabled
    /// under /etc/systemd/system/*.wants (its postgres, timers, timesyncd, ...) except ssh.service
    /// (the host's sshd, with the sandbox's config) and targets (grouping only, nothing runs).
    /// Its packaged etcd.service is whited out instead (see `removedUnits`).
    static func unitsToMask(etc: String = "/etc/systemd/system") -> [String] {
        let fm = FileManager.default
        var units: Set<String> = [
            // nspawn gives the container a console: no getty on it, nor on any tty.
            "getty.target", "console-getty.service",
            // ssh.service runs sshd; a socket-activated second one would fight it for port 22.
            "ssh.socket",
        ]
        for wants in ((try? fm.contentsOfDirectory(atPath: etc)) ?? []) where wants.hasSuffix(".wants") {
            for unit in (try? fm.contentsOfDirectory(atPath: "\(etc)/\(wants)")) ?? [] {
                if unit.hasSuffix(".target") || ["ssh.service", "sshd.service", "etcd.service"].contains(unit) { continue }
                units.insert(unit)
            }
        }
        return units.sorted()
    }

    /// Debian's etcd-server unit, its links and its SysV script with its rc links (systemd's
    /// SysV generator would make an `etcd.service` of that): a fresh host has no etcd package (its
    /// binary is whited out on every host), so it has no etcd.service either.
    static func removedUnits(etc: String = "/etc") -> [String] {
        var paths = [
            "/usr/lib/systemd/system/etcd.service", "\(etc)/systemd/system/etcd2.service",
            "\(etc)/systemd/system/multi-user.target.wants/etcd.service", "\(etc)/init.d/etcd",
        ]
        let fm = FileManager.default
        for rc in ((try? fm.contentsOfDirectory(atPath: etc)) ?? []).sorted() where rc.hasPrefix("rc") && rc.hasSuffix(".d") {
            for link in ((try? fm.contentsOfDirectory(atPath: "\(etc)/\(rc)")) ?? []).sorted()
            where (try? fm.destinationOfSymbolicLink(atPath: "\(etc)/\(rc)/\(link)"))?.hasSuffix("/init.d/etcd") == true {
                paths.append("\(etc)/\(rc)/\(link)")
            }
        }
        return paths
    }

    /// The controller's service users that a fresh host lacks, so that muster's own `useradd`
    /// runs on a systemd host as it would on a new machine.
    static let removedUsers = ["etcd"]

    /// Writes what a systemd host needs in its upper layer, after `HostRoot.prepare`.
    static func prepare(host: SandboxHost) throws {
        func write(_ path: String, _ text: String, _ mode: Int) throws {
            try HostRoot.write(path, text, in: host, mode: mode)
        }
        // ssh.service reads SSHD_OPTS from here: the same log as a host without init (the
        // benchmark counts channels from it); the config is the sandbox's /etc/ssh/sshd_config.
        try write("/etc/default/ssh", """
            # muster sandbox host \(host.name): sshd runs as ssh.service with the sandbox's config
            SSHD_OPTS="-E /var/log/muster-sshd.log -f /etc/ssh/sshd_config"

            """, 0o644)
        let unitDir = host.upperDir + "/etc/systemd/system"
        try FileManager.default.createDirectory(atPath: unitDir, withIntermediateDirectories: true)
        for unit in unitsToMask() {
            let path = "\(unitDir)/\(unit)"
            unlink(path)
            guard symlink("/dev/null", path) == 0 else {
                throw SandboxError("cannot mask \(unit) in \(unitDir): \(String(cString: strerror(errno)))")
            }
        }
        for path in removedUnits() { try HostRoot.whiteout(path, in: host.upperDir) }
        // A machine id of its own (journald's directory, D-Bus), not the controller's.
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try write("/etc/machine-id", id + "\n", 0o444)
        for file in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
            try copyWithout(users: removedUsers, file: file, into: host.upperDir)
        }
    }

    /// Copies `file` into `upper` without the lines of `users`, keeping its mode and owner.
    static func copyWithout(users: [String], file: String, into upper: String) throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return }
        var info = stat()
        guard stat(file, &info) == 0 else { return }
        let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            !users.contains { line.hasPrefix($0 + ":") }
        }
        let target = upper + file
        try? FileManager.default.removeItem(atPath: target)
        try Data(kept.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: target))
        guard chown(target, info.st_uid, info.st_gid) == 0, chmod(target, info.st_mode & 0o7777) == 0 else {
            throw SandboxError("cannot set the owner and mode of \(target): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: starting

    /// The cgroup directory name of the host in every cgroup hierarchy nspawn uses. nspawn with
    /// `--keep-unit` puts itself and the container under its own cgroup (`supervisor`,
    /// `payload`): without a cgroup per host, two hosts would share the root's.
    static func cgroupName(_ host: SandboxHost) -> String { "muster-sandbox-\(host.namespace)" }

    /// The hierarchies a host's cgroup lives in: the named systemd one and the unified one on a
    /// hybrid machine (this one), or the single cgroup2 root.
    static func cgroupDirs(_ host: SandboxHost) -> [String] {
        ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .filter { FileManager.default.fileExists(atPath: "\($0)/cgroup.procs") }
            .map { "\($0)/\(cgroupName(host))" }
    }

    static func nspawnArguments(_ host: SandboxHost) -> [String] {
        [nspawn, "-D", host.mergedDir, "--boot", "--register=no", "--keep-unit",
         "--machine=\(host.machineName)", "--hostname=\(host.name)",
         "--network-namespace-path=/run/netns/\(host.namespace)",
         "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
         "--tmpfs=/tmp:mode=1777"]
    }

    /// The boot loop, run by `/bin/sh` as `unshare --mount --propagation private` execs it: moves
    /// itself into the host's cgroups, mounts the overlay (in this private mount namespace only,
    /// as for a host without init), then boots the host with nspawn, again whenever nspawn exits
    /// with 133 (`systemctl reboot`), and ends on any other status or once `down` wrote the stop
    /// file. Each nspawn records its own pid and start time before it execs, so `down` signals
    /// exactly that process.
    static func bootScript(_ host: SandboxHost) -> String {
        let q = Shell.quote
        let record = q(host.nspawnRecordPath)
        let recordSelf = "echo \"$$ $(cut -d ' ' -f 22 /proc/$$/stat)\" > \(record).tmp && mv \(record).tmp \(record) && exec \"$@\""
        let cgroups = cgroupDirs(host).map { "mkdir -p \(q($0)) && echo $$ > \(q($0 + "/cgroup.procs"))" }
        return """
            set -eu
            \(cgroups.joined(separator: "\n"))
            mount -t overlay \(q("muster-" + host.name)) -o \(q("lowerdir=/,upperdir=\(host.upperDir),workdir=\(host.workDir)")) \(q(host.mergedDir))
            # nspawn's lock file for this root (named after the overlay's device and inode), removed at the end.
            lock=/run/systemd/nspawn/locks/inode-$(stat -c %d:%i \(q(host.mergedDir)))
            echo "$lock" > \(q(host.rootDir + "/nspawn.lock"))
            set +e
            boot=0 rc=0
            while [ ! -e \(q(host.stopPath)) ] && [ $boot -lt \(maxBoots) ]; do
                boot=$((boot + 1))
                echo "muster: boot $boot of \(host.name)"
                /bin/sh -c \(q(recordSelf)) muster-nspawn \(Shell.join(nspawnArguments(host)))
                rc=$?
                echo "muster: systemd-nspawn exited with status $rc"
                [ $rc -eq \(rebootStatus) ] || break
            done
            rm -f \(record) "$lock"
            exit $rc
            """
    }

    /// Starts the boot loop (detached, like a host without init) and waits until it has started
    /// nspawn. `recordLauncher` is called as soon as the loop's pid is known.
    static func launch(_ host: SandboxHost, recordLauncher: (SandboxProcess) throws -> Void) throws {
        unlink(host.stopPath)
        unlink(host.nspawnRecordPath)
        let pid = try System.spawnDetached([
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", bootScript(host),
        ], log: host.logPath)
        guard let loop = System.record(pid, role: "\(host.name) boot loop") else {
            throw SandboxError("\(host.name): the boot loop exited at once; its log \(host.logPath):\n\(Sandbox.tail(host.logPath))")
        }
        try recordLauncher(loop)
        var started = false
        System.waitUntil(attempts: 100, interval: 0.05) {
            started = nspawnProcess(of: host) != nil
            return started || !System.isAlive(loop)
        }
        guard started else {
            throw SandboxError("\(host.name): systemd-nspawn did not start within 5 s; its log \(host.logPath):\n\(Sandbox.tail(host.logPath))")
        }
    }

    // MARK: the running host

    /// The nspawn of the host's current boot, when it still runs.
    static func nspawnProcess(of host: SandboxHost) -> SandboxProcess? {
        guard let text = try? String(contentsOfFile: host.nspawnRecordPath, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let pid = Int32(fields[0]), let start = UInt64(fields[1]) else { return nil }
        let process = SandboxProcess(role: "\(host.name) systemd-nspawn", pid: pid, startTime: start)
        return System.isAlive(process) ? process : nil
    }

    /// The container's pid 1 (systemd) of the current boot: nspawn's child in another pid namespace.
    static func initProcess(of host: SandboxHost) -> SandboxProcess? {
        guard let nspawn = nspawnProcess(of: host) else { return nil }
        let own = System.namespace("pid", of: nspawn.pid)
        for child in System.children(of: nspawn.pid) where System.namespace("pid", of: child) != own {
            return System.record(child, role: "\(host.name) init")
        }
        return nil
    }

    /// Every pid in the host's cgroups (the loop, nspawn, the container's processes).
    static func cgroupPids(_ host: SandboxHost) -> [Int32] {
        var pids = Set<Int32>()
        for dir in cgroupDirs(host) {
            guard let walker = FileManager.default.enumerator(atPath: dir) else { continue }
            var files = ["cgroup.procs"]
            while let path = walker.nextObject() as? String {
                if path.hasSuffix("/cgroup.procs") { files.append(path) }
            }
            for file in files {
                let text = (try? String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)) ?? ""
                pids.formUnion(text.split(separator: "\n").compactMap { Int32($0) })
            }
        }
        return pids.sorted()
    }

    // MARK: stopping

    /// Asks every host to power off: the stop file ends its loop after this boot, SIGTERM makes
    /// nspawn shut the container down cleanly (systemd stops its units, then nspawn exits).
    /// Waits at most `timeout` seconds for every loop to end; the caller kills what is left.
    static func stop(_ hosts: [SandboxHost], timeout: TimeInterval = 20, log: (String) -> Void) {
        var waiting: [SandboxProcess] = []
        for host in hosts {
            _ = FileManager.default.createFile(atPath: host.stopPath, contents: nil)
            if let nspawn = nspawnProcess(of: host) {
                log("powering \(host.name) off (SIGTERM to systemd-nspawn pid \(nspawn.pid))")
                System.signal(nspawn, SIGTERM)
                waiting.append(nspawn)
            }
            if let loop = host.launcher, System.isAlive(loop) { waiting.append(loop) }
        }
        let done = System.waitUntil(attempts: Int(timeout / 0.1), interval: 0.1) {
            for process in waiting { System.reap(process.pid) }
            return !waiting.contains(where: System.isAlive)
        }
        if !done {
            log("warning: \(waiting.filter(System.isAlive).map { "\($0.role) pid \($0.pid)" }.joined(separator: ", ")) "
                + "still running \(Int(timeout)) s after SIGTERM: killing")
        }
        for host in hosts {
            if let status = lastExitStatus(host), host.launcher.map(System.isAlive) != true {
                log("\(host.name) powered off (systemd-nspawn exited with status \(status))")
            }
        }
    }

    /// The status of the boot loop's last nspawn, from its log line.
    static func lastExitStatus(_ host: SandboxHost) -> Int? {
        let text = (try? String(contentsOfFile: host.logPath, encoding: .utf8)) ?? ""
        let prefix = "muster: systemd-nspawn exited with status "
        // The console copies the container's output with CRLF line ends: split on any newline.
        return text.split(whereSeparator: \.isNewline).last { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) }
    }

    /// Kills whatever still runs in the host's cgroups (`cgroup.kill` where the kernel has it).
    static func killCgroups(_ host: SandboxHost) {
        for dir in cgroupDirs(host) where FileManager.default.fileExists(atPath: dir + "/cgroup.kill") {
            try? Data("1".utf8).write(to: URL(fileURLWithPath: dir + "/cgroup.kill"))
        }
        for pid in cgroupPids(host) { kill(pid, SIGKILL) }
    }

    /// Removes the host's cgroups (deepest first; only empty ones can go) and what nspawn left in
    /// /run/systemd/nspawn under the host's machine name.
    static func removeLeftovers(_ host: SandboxHost) {
        for dir in cgroupDirs(host) where FileManager.default.fileExists(atPath: dir) {
            var dirs = [dir]
            if let walker = FileManager.default.enumerator(atPath: dir) {
                while let path = walker.nextObject() as? String {
                    if walker.fileAttributes?[.type] as? FileAttributeType == .typeDirectory { dirs.append("\(dir)/\(path)") }
                }
            }
            for path in dirs.sorted(by: { $0.count > $1.count }) { rmdir(path) }
        }
        for dir in ["/run/systemd/nspawn/propagate", "/run/systemd/nspawn/unix-export"] {
            try? FileManager.default.removeItem(atPath: "\(dir)/\(host.machineName)")
        }
        // The loop removes nspawn's lock file when it ends; a killed loop cannot.
        if let lock = try? String(contentsOfFile: host.rootDir + "/nspawn.lock", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines),
           lock.hasPrefix("/run/systemd/nspawn/locks/inode-"), !lock.contains("/..") {
            unlink(lock)
        }
    }

    /// What of the host still exists: live nspawn or container processes and its cgroups.
    static func leftovers(_ host: SandboxHost) -> [String] {
        var found: [String] = []
        if let nspawn = nspawnProcess(of: host) { found.append("\(nspawn.role) pid \(nspawn.pid) still running") }
        let pids = cgroupPids(host)
        if !pids.isEmpty { found.append("\(host.name): processes \(pids.map(String.init).joined(separator: " ")) in its cgroup") }
        for dir in cgroupDirs(host) where FileManager.default.fileExists(atPath: dir) { found.append("cgroup \(dir)") }
        return found
    }
}
