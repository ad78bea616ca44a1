import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starting and stopping the daemons tests run as children (etcd, `muster discovery serve`,
/// throwaway servers). Every wait is bounded: a child that ignores signals fails its test
/// instead of hanging the whole run.
public enum ChildProcesses {
    /// How often the waits below look at the child again.
    static let pollInterval: useconds_t = 20_000

    /// Starts `executable` with stdout and stderr appended to a fresh file at `logPath` (or
    /// thrown away when nil) and stdin from /dev/null, so a daemon never waits on the terminal.
    public static func start(_ executable: String, _ arguments: [String], logPath: String?) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw HarnessError(description: "cannot start \(executable): no executable file there")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let logPath {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Running, as far as the kernel says. A zombie (exited, not yet reaped by Foundation)
    /// counts as gone, so a slow or absent reaper can never make a wait below run to its
    /// deadline; `isRunning` guards against a reaped child's pid being reused.
    public static func isAlive(_ process: Process) -> Bool {
        guard process.isRunning else { return false }
        let pid = process.processIdentifier
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        // The state is the first field after the command name, which is in parentheses and may
        // itself hold spaces or parentheses: hence the last ")".
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// True once `process` is gone (see `isAlive`), false if it is still running after `seconds`.
    @discardableResult
    public static func waitGone(_ process: Process, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isAlive(process) {
            if Date() >= deadline { return false }
            usleep(pollInterval)
        }
        return true
    }

    /// SIGTERM, so the daemon can clean up (etcd, in Go, unblocks its own signals; `muster
    /// discovery serve` removes its pidfile); SIGKILL if it is still there after 10 s; then waits
    /// at most 5 s more. Does nothing for a process that has already gone.
    ///
    /// A child that does not unblock signals inherits the test runner's blocked-signal mask and
    /// never sees the SIGTERM (python, say): stop such a one with `forceStop`.
    public static func stop(_ process: Process) {
        guard isAlive(process) else { return }
        kill(process.processIdentifier, SIGTERM)
        if waitGone(process, seconds: 10) { return }
        kill(process.processIdentifier, SIGKILL)
        waitGone(process, seconds: 5)
    }

    /// SIGKILL at once, then waits at most `seconds` for it to be gone.
    public static func forceStop(_ process: Process, seconds: TimeInterval = 10) {
        guard isAlive(process) else { return }
        kill(process.processIdentifier, SIGKILL)
        waitGone(process, seconds: seconds)
    }
}
