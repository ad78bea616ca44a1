import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of a program run on the controller.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var succeeded: Bool { status == 0 }
}

public struct LocalProcessError: Error, CustomStringConvertible, Sendable {
    public var command: [String]
    public var result: ProcessResult?
    public var reason: String
    public var description: String {
        var text = "\(Shell.join(command)): \(reason)"
        if let result, !result.stderrText.isEmpty {
            text += ": " + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return text
    }
}

/// Runs programs on the controller (never on a managed host: that is MusterSSH's job).
///
/// Built on posix_spawn rather than Foundation's `Process`: the pipes are close-on-exec, so a
/// program started concurrently (or a daemon a child leaves behind) never holds another call's
/// pipe open, and children start with an empty signal mask and default handlers (a test runner's
/// blocked SIGTERM would otherwise be inherited). Output is read until the child exits, then
/// drained for a bounded time: a detached grandchild that kept the pipe cannot hang the caller.
public enum LocalProcess {
    /// `inheritingEnvironment: false`: the child gets `environment` alone, nothing of ours (a
    /// program an inventory names must not see the operator's passphrase or tokens).
    public static func run(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        inheritingEnvironment: Bool = true, timeout: TimeInterval = 60
    ) throws -> ProcessResult {
        precondition(!arguments.isEmpty)
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else {
            throw LocalProcessError(command: arguments, result: nil, reason: "cannot create pipes")
        }
        // Glibc's pipe2 is not visible to Swift; the window before FD_CLOEXEC is tiny, and the
        // bounded drain below keeps a leaked descriptor from hanging anyone.
        for fd in outPipe + errPipe + inPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input == nil {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        } else {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = inheritingEnvironment ? ProcessInfo.processInfo.environment : [:]
        for (key, value) in environment ?? [:] { env[key] = value }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(outPipe[1]); close(errPipe[1]); close(inPipe[0])
        guard spawned == 0 else {
            close(outPipe[0]); close(errPipe[0]); close(inPipe[1])
            throw LocalProcessError(command: arguments, result: nil,
                                    reason: "cannot start: \(String(cString: strerror(spawned)))")
        }
        if let input {
            let writer = inPipe[1]
            DispatchQueue.global().async {
                input.withUnsafeBytes { buffer in
                    var offset = 0
                    while offset < buffer.count {
                        let n = write(writer, buffer.baseAddress! + offset, buffer.count - offset)
                        if n <= 0 { break }
                        offset += n
                    }
                }
                close(writer)
            }
        } else {
            close(inPipe[1])
        }
        defer { close(outPipe[0]); close(errPipe[0]) }
        var stdout = Data(), stderr = Data()
        var open = [outPipe[0], errPipe[0]]
        let deadline = Deadline(seconds: timeout)
        var status: Int32?
        var drainUntil: Deadline?
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            if status == nil, let code = reap(pid) {
                status = code
                drainUntil = Deadline(seconds: 2)
            }
            if let drainUntil, drainUntil.passed { break }
            if status == nil, deadline.passed {
                kill(pid, SIGKILL)
                _ = reap(pid, wait: true)
                throw LocalProcessError(command: arguments, result: nil, reason: "timed out after \(Int(timeout)) s")
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 50)
            guard ready > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n > 0 {
                    if entry.fd == outPipe[0] { stdout.append(contentsOf: buffer[0..<n]) } else { stderr.append(contentsOf: buffer[0..<n]) }
                } else {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        let code = status ?? reap(pid, wait: true) ?? -1
        return ProcessResult(status: code, stdout: stdout, stderr: stderr)
    }

    /// The exit status (128+signal for a signal) once `pid` has ended; `nil` while it runs.
    private static func reap(_ pid: pid_t, wait: Bool = false) -> Int32? {
        var raw: Int32 = 0
        let rc = waitpid(pid, &raw, wait ? 0 : WNOHANG)
        guard rc == pid else { return nil }
        return raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Like `run`, but throws when the program exits non-zero.
    @discardableResult
    public static func check(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        timeout: TimeInterval = 60
    ) throws -> ProcessResult {
        let result = try run(arguments, input: input, environment: environment, timeout: timeout)
        guard result.succeeded else {
            throw LocalProcessError(command: arguments, result: result,
                                    reason: "exited with status \(result.status)")
        }
        return result
    }

    /// `run` for async callers: the blocking wait happens on a dispatch thread, never on one of
    /// Swift's cooperative threads (two on a 2-core machine, and everything else needs them).
    public static func runOffPool(
        _ arguments: [String], environment: [String: String]? = nil, inheritingEnvironment: Bool = true,
        timeout: TimeInterval = 60
    ) async throws -> ProcessResult {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    try run(arguments, environment: environment, inheritingEnvironment: inheritingEnvironment, timeout: timeout)
                })
            }
        }
    }
}

/// Runs blocking work (hashing a large file, a poll) on a dispatch thread, never on one of
/// Swift's cooperative threads (two on a 2-core machine, and everything else needs them).
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}
