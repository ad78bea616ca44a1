import Foundation
import MusterTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `muster` executable this checkout built (`.build/debug/muster`), run the way a user runs
/// it: for golden tests of its output and exit codes, and for what it costs (peak RSS).
///
/// Built on posix_spawn rather than Foundation's `Process`: close-on-exec pipes (a child another
/// test starts meanwhile never holds ours open), a clean signal mask, a process group of its own
/// for the hang guard, and no reaper thread racing us for the exit status.
struct MusterBinary {
    /// What one run did.
    struct Run: CustomStringConvertible {
        /// The exit status, or 128 + the signal that ended it.
        var status: Int32
        var stdout: Data
        var stderr: Data
        /// Peak resident set of muster, when the run was asked to measure it (see `run`).
        var peakRSSBytes: Int?
        /// The hang guard killed it.
        var timedOut: Bool

        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
        var peakRSSMiB: Double? { peakRSSBytes.map { Double($0) / 1_048_576 } }

        var description: String {
            let memory = peakRSSMiB.map { String(format: ", peak RSS %.1f MiB", $0) } ?? ""
            return "exit \(status)\(timedOut ? " (killed by the hang guard)" : "")\(memory)\n"
                + "stdout: \(stdoutText.prefix(2000))\nstderr: \(stderrText.prefix(2000))"
        }
    }

    /// A run longer than this is a hang, whatever it was doing: it is killed (with anything it
    /// started) and reported.
    static let hangLimit: TimeInterval = 30

    /// The package root: this file is Tests/MusterCLITests/MusterBinary.swift.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    let path: String

    /// glibc 2.29's posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not
    /// declare: looked up by name.
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }

    /// The debug build's binary. Missing, the test fails (never skips): a test of the binary
    /// that quietly passes without one proves nothing.
    /// Another copy of muster (an installed one, say).
    init(path: String) {
        self.path = path
    }

    init() throws {
        path = Self.packageRoot.appendingPathComponent(".build/debug/muster").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError(description: "\(path) is missing: build it first (`swift build --product muster` in \(Self.packageRoot.path)), then run these tests again; they fail rather than skip")
        }
    }

    /// GNU time, the small parent that measures muster's peak RSS (see `run`).
    static let timeCommand = "/usr/bin/time"

    /// Runs `muster ARGUMENTS` with exactly `environment`, `stdin` on its standard input (then
    /// end of file), from `directory`. stdout and stderr are read while it runs, so a chatty
    /// child never blocks on a full pipe.
    ///
    /// `measuringPeakRSS` runs muster under GNU time, whose `wait4` reports muster's
    /// `ru_maxrss`. Our own `wait4` cannot: a child spawned (or forked) from this test process
    /// starts out sharing its memory, and the kernel keeps that memory's high-water mark across
    /// `exec` (`exec_mmap` → `setmax_mm_hiwater_rss`), so every child would report the test
    /// runner's size (66 MiB here) whenever it is larger than the child's own. A fork of a small
    /// process (time) starts from a small mark.
    func run(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
             stdin: Data = Data(), in directory: String? = nil, measuringPeakRSS: Bool = false,
             hangLimit: TimeInterval = MusterBinary.hangLimit) throws -> Run {
        var command = [path] + arguments
        var report: String?
        if measuringPeakRSS {
            guard FileManager.default.isExecutableFile(atPath: Self.timeCommand) else {
                throw HarnessError(description: "\(Self.timeCommand) is missing: measuring muster's peak RSS needs GNU time (Debian: apt-get install time); the test fails rather than skip")
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-rss-\(UUID().uuidString)").path
            report = file
            command = [Self.timeCommand, "-f", "%M", "-o", file] + command
        }
        defer { if let report { try? FileManager.default.removeItem(atPath: report) } }
        var run = try spawn(command, environment: environment, stdin: stdin, in: directory, hangLimit: hangLimit)
        if let report {
            // The last line is "%M" (KiB); a line before it may say how the command ended.
            let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
            guard let kib = text.split(separator: "\n").last.flatMap({ Int($0) }) else {
                throw HarnessError(description: "\(Self.timeCommand) reported no peak RSS for muster \(arguments): '\(text)'; \(run)")
            }
            run.peakRSSBytes = kib * 1024
        }
        return run
    }

    private func spawn(_ command: [String], environment: [String: String], stdin: Data, in directory: String?,
                       hangLimit: TimeInterval) throws -> Run {
        // Writing to a child that has exited must fail with EPIPE, not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw HarnessError(description: "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        // Close-on-exec: a child that another test starts meanwhile must not hold these open.
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(inPipe[1], F_SETFL, fcntl(inPipe[1], F_GETFL) | O_NONBLOCK)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if let directory {
            guard let addChdir = Self.addChdir else {
                throw HarnessError(description: "this C library has no posix_spawn_file_actions_addchdir_np (glibc 2.29+): cannot run muster in \(directory)")
            }
            _ = addChdir(&actions, directory)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // An empty signal mask and default handlers (the test runner may block or ignore some),
        // and a process group of its own so the hang guard also kills what it started.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard spawned == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw HarnessError(description: "cannot start \(command[0]): \(String(cString: strerror(spawned)))")
        }

        let (stdout, stderr, timedOut) = exchange(with: pid, stdin: stdin, writer: inPipe[1],
                                                  readers: (outPipe[0], errPipe[0]), hangLimit: hangLimit)
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        let status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return Run(status: status, stdout: stdout, stderr: stderr, peakRSSBytes: nil, timedOut: timedOut)
    }

    /// Feeds stdin and collects stdout and stderr until both close, or kills the child's process
    /// group at the hang limit. Closes every descriptor it is given.
    private func exchange(with pid: pid_t, stdin: Data, writer: Int32, readers: (Int32, Int32),
                          hangLimit: TimeInterval) -> (Data, Data, Bool) {
        var stdout = Data(), stderr = Data()
        var writer: Int32? = writer
        var written = 0
        if stdin.isEmpty, let fd = writer { close(fd); writer = nil }
        var open = [readers.0, readers.1]
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(hangLimit)
        var timedOut = false
        while !open.isEmpty {
            if Date() >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let fd = writer { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                if entry.fd == writer {
                    let n = stdin.withUnsafeBytes { write(entry.fd, $0.baseAddress! + written, $0.count - written) }
                    if n > 0 { written += n }
                    if n < 0 && errno != EAGAIN || written == stdin.count {
                        close(entry.fd)
                        writer = nil
                    }
                    continue
                }
                let n = read(entry.fd, &buffer, buffer.count)
                if n > 0 {
                    if entry.fd == readers.0 { stdout.append(contentsOf: buffer[0..<n]) } else { stderr.append(contentsOf: buffer[0..<n]) }
                } else if n == 0 || errno != EINTR {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        if let writer { close(writer) }
        open.forEach { close($0) }
        return (stdout, stderr, timedOut)
    }
}
