import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// Small controller-side helpers: processes by recorded pid, the global lock, TCP probes.
enum System {
    static func requireRoot(_ what: String) throws {
        guard geteuid() == 0 else {
            throw SandboxError("muster sandbox \(what) needs root: it creates network namespaces, a "
                + "bridge and mounts; run it as root (for example with sudo)")
        }
    }

    /// Fails with one clear message naming every missing program and its Debian package.
    static func requireTools(systemd: Bool = false) throws {
        var needed: [(String, String)] = [
            ("/usr/sbin/ip", "iproute2"), ("/usr/sbin/sshd", "openssh-server"),
            ("/usr/bin/ssh-keygen", "openssh-client"), ("/usr/sbin/dnsmasq", "dnsmasq-base"),
            ("/usr/bin/unshare", "util-linux"), ("/usr/bin/nsenter", "util-linux"),
            ("/usr/sbin/pivot_root", "util-linux"), ("/usr/bin/setsid", "util-linux"),
        ]
        if systemd { needed.append((SystemdHost.nspawn, "systemd-container")) }
        let missing = needed.filter { !FileManager.default.isExecutableFile(atPath: $0.0) }
        guard missing.isEmpty else {
            let names = missing.map { "\($0.0) (apt-get install -y \($0.1))" }
            throw SandboxError("muster sandbox needs programs that are missing: "
                + names.joined(separator: ", "))
        }
    }

    /// The kernel's start time of `pid` (field 22 of /proc/PID/stat), nil when it is gone.
    static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is fields[19]. A zombie counts as gone.
        guard fields.count > 19, fields[0] != "Z" else { return nil }
        return UInt64(fields[19])
    }

    static func record(_ pid: Int32, role: String) -> SandboxProcess? {
        startTime(of: pid).map { SandboxProcess(role: role, pid: pid, startTime: $0) }
    }

    /// True when the recorded process still runs (same pid and same start time).
    static func isAlive(_ process: SandboxProcess) -> Bool {
        startTime(of: process.pid) == process.startTime && !isZombie(process.pid)
    }

    /// A killed process stays in /proc as a zombie until its parent reaps it: that is not alive.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Signals `process` only if it is still the process we recorded.
    static func signal(_ process: SandboxProcess, _ signo: Int32) {
        if isAlive(process) { _ = kill(process.pid, signo) }
    }

    /// A bash script that closes every descriptor above 2 and execs its arguments: what a
    /// process that may leave daemons behind runs first, so that no daemon keeps our pipes open.
    static let closeInherited =
        #"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec "$@""#

    /// Spawns `arguments` (absolute path first) in a new session, stdin from /dev/null, stdout
    /// and stderr appended to `log`, every other descriptor closed; returns its pid at once.
    static func spawnDetached(_ arguments: [String], log: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc's POSIX_SPAWN_SETSID (0x80); Swift's Glibc module does not export it.
        let setsid: Int32 = 0x80
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        // bash closes every inherited descriptor above 2 (another thread's pipe ends, say), then
        // execs the program, so the pid stays the program's.
        let full = ["/bin/bash", "-c", closeInherited, "muster-sandbox"] + arguments
        let argv = full.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/bash", &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw SandboxError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Collects `pid` if it is our exited child (a no-op otherwise).
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// The namespace `kind` (`pid`, `mnt`, `net`, ...) of `pid`, as `pid:[4026531836]`.
    static func namespace(_ kind: String, of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
    }

    /// The pids `/proc` lists as children of `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// Polls `condition` every `interval` until it holds, at most `attempts` times.
    @discardableResult
    static func waitUntil(attempts: Int, interval: TimeInterval, _ condition: () -> Bool) -> Bool {
        for attempt in 0..<attempts {
            if condition() { return true }
            if attempt + 1 < attempts { Thread.sleep(forTimeInterval: interval) }
        }
        return false
    }

    /// Whether a TCP connection to `address:port` opens within `timeoutMs`.
    static func tcpReachable(address: String, port: Int, timeoutMs: Int32 = 500) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { return false }
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&pfd, 1, timeoutMs) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0
    }
}

/// An exclusive `flock` on one machine-wide file, so that two `up`/`down` never interleave and
/// two sandboxes never pick the same names or subnet. Waits at most `timeout` seconds.
final class SandboxLock {
    static let path = "/run/lock/muster-sandbox.lock"
    private let fd: Int32

    init(timeout: TimeInterval = 120) throws {
        try? FileManager.default.createDirectory(atPath: "/run/lock", withIntermediateDirectories: true)
        fd = open(Self.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SandboxError("cannot open \(Self.path): \(String(cString: strerror(errno)))") }
        let attempts = max(1, Int(timeout / 0.2))
        let locked = System.waitUntil(attempts: attempts, interval: 0.2) { flock(fd, LOCK_EX | LOCK_NB) == 0 }
        guard locked else {
            close(fd)
            throw SandboxError("another muster sandbox command holds \(Self.path) (waited \(Int(timeout)) s)")
        }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
