internal import CLibSSH2
import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// One SSH connection to one host, reused for all of that host's steps.
///
/// libssh2 is blocking C, so every session owns a serial dispatch queue (its lane): all libssh2
/// calls for this session run there, and async callers wait on a continuation, never blocking
/// Swift's cooperative pool.
public final class SSHSession: Sendable {
    public let target: SSHTarget
    let lane: DispatchQueue
    let state: LaneState

    private init(target: SSHTarget) {
        self.target = target
        lane = DispatchQueue(label: "muster.ssh.\(target.name)")
        state = LaneState(target: target, lane: lane)
    }

    deinit {
        let state = state
        lane.async { state.shutdown() }
    }

    /// Connects, checks the host key and authenticates.
    public static func connect(_ target: SSHTarget) async throws -> SSHSession {
        SSH.initialize()
        let session = SSHSession(target: target)
        try await session.onLane { state in try state.open() }
        return session
    }

    func onLane<T: Sendable>(_ body: @escaping @Sendable (LaneState) throws -> T) async throws -> T {
        let state = state
        return try await withCheckedThrowingContinuation { continuation in
            lane.async {
                let result = Result { try body(state) }
                state.afterJob()
                continuation.resume(with: result)
            }
        }
    }

    /// Runs `command` through the remote user's shell. Does not throw on a non-zero exit status
    /// (see `check`), only on transport problems, timeouts and sudo wanting a password.
    ///
    /// - Parameter privileged: when the user is not root, run as `sudo -n sh -c COMMAND`.
    /// - Parameter stdinWritten: told each time bytes of `stdin` went out (a transfer's meter).
    public func run(_ command: String, stdin: Data? = nil, timeout: Double? = nil,
                    privileged: Bool = false, stdinWritten: (@Sendable (Int) -> Void)? = nil) async throws -> CommandResult {
        let line = wrap(command, privileged: privileged)
        let seconds = timeout ?? target.commandTimeout
        let result = try await onLane { state in try state.exec(line, stdin: stdin, timeout: seconds, stdinWritten: stdinWritten) }
        if privileged && target.user != "root" && result.exitStatus != 0,
           result.stderrText.contains("a password is required") {
            throw SSHError(host: target.name, step: "sudo", kind: .sudoNeedsPassword, message: """
                sudo on \(target.name) wants a password for \(target.user): allow passwordless \
                sudo (NOPASSWD) for this user, or connect as root
                """)
        }
        return result
    }

    /// Like `run`, but throws `SSHError.commandFailed` with the command's stderr when it fails.
    @discardableResult
    public func check(_ command: String, stdin: Data? = nil, timeout: Double? = nil,
                      privileged: Bool = false, step: String? = nil) async throws -> CommandResult {
        let result = try await run(command, stdin: stdin, timeout: timeout, privileged: privileged)
        guard result.succeeded else {
            let how = result.exitSignal.map { "killed by SIG\($0)" } ?? "exit status \(result.exitStatus)"
            let stderr = result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
            throw SSHError(host: target.name, step: step ?? command, kind: .commandFailed,
                           message: "\(how)" + (stderr.isEmpty ? "" : ": \(stderr)"))
        }
        return result
    }

    func wrap(_ command: String, privileged: Bool) -> String {
        privileged && target.user != "root" ? "sudo -n sh -c " + Shell.quote(command) : command
    }

    /// Uploads a local file atomically; skipped when the remote file has the same SHA-256.
    /// `sha256` is the file's digest when the caller knows it already (a snapshot sent to every
    /// host is hashed once, not once per host); else it is computed here, off the cooperative pool.
    /// `written`: told each time bytes went out (a transfer's meter).
    public func upload(from localPath: String, to remotePath: String, mode: Int, owner: String? = nil,
                       privileged: Bool = false, sha256: String? = nil,
                       written: (@Sendable (Int) -> Void)? = nil) async throws -> UploadResult {
        let hash: String
        do {
            if let sha256 { hash = sha256 } else { hash = try await offPool { try Digest.sha256Hex(fileAt: localPath) } }
        } catch {
            throw SSHError(host: target.name, step: "upload \(remotePath)", kind: .upload,
                           message: "cannot read \(localPath): \(error)")
        }
        return try await upload(.file(localPath), hash: hash, to: remotePath, mode: mode,
                                owner: owner, privileged: privileged, written: written)
    }

    /// Copies a remote file (read as root when `privileged`) into a new local file (mode 0600,
    /// it must not exist), streamed as it comes and fsynced; a failure removes it. Returns the
    /// bytes copied.
    public func download(_ remotePath: String, to localPath: String, privileged: Bool = false, timeout: Double = 3600) async throws -> Int64 {
        let descriptor = open(localPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SSHError(host: target.name, step: "download \(remotePath)", kind: .upload, message: "cannot create \(localPath): \(String(cString: strerror(errno)))")
        }
        do {
            let line = wrap("cat -- \(Shell.quote(remotePath))", privileged: privileged)
            let result = try await onLane { state in try state.exec(line, stdin: nil, timeout: timeout, stdoutTo: descriptor) }
            guard result.exitStatus == 0 else {
                throw SSHError(host: target.name, step: "download \(remotePath)", kind: .upload,
                               message: "cannot read \(remotePath): \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            guard fsync(descriptor) == 0 else {
                throw SSHError(host: target.name, step: "download \(remotePath)", kind: .upload, message: "cannot fsync \(localPath)")
            }
            var facts = stat()
            fstat(descriptor, &facts)
            Glibc.close(descriptor)
            return Int64(facts.st_size)
        } catch {
            Glibc.close(descriptor)
            unlink(localPath)
            throw error
        }
    }

    /// Uploads bytes atomically; skipped when the remote file has the same SHA-256.
    public func upload(data: Data, to remotePath: String, mode: Int, owner: String? = nil,
                       privileged: Bool = false) async throws -> UploadResult {
        try await upload(.data(data), hash: Digest.sha256Hex(data), to: remotePath, mode: mode,
                         owner: owner, privileged: privileged)
    }

    private func upload(_ source: UploadSource, hash: String, to remotePath: String, mode: Int,
                        owner: String?, privileged: Bool, written: (@Sendable (Int) -> Void)? = nil) async throws -> UploadResult {
        let step = "upload \(remotePath)"
        func failure(_ message: String) -> SSHError {
            SSHError(host: target.name, step: step, kind: .upload, message: message)
        }
        let quoted = Shell.quote(remotePath)
        let modeText = String(mode, radix: 8)
        var settle = "chmod \(modeText) FILE"
        if let owner { settle += " && chown \(Shell.quote(owner)) FILE" }

        let remoteHash = try await run("sha256sum \(quoted) 2>/dev/null || true", privileged: privileged)
        if remoteHash.stdoutText.prefix(64) == hash {
            let fix = settle.replacingOccurrences(of: "FILE", with: quoted)
            let result = try await run(fix, privileged: privileged)
            guard result.succeeded else { throw failure("\(fix): \(result.stderrText)") }
            return UploadResult(skipped: true, bytesSent: 0)
        }

        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let parent = (remotePath as NSString).deletingLastPathComponent
        let finalTemp = "\(remotePath).tmp.\(suffix)"
        // Non-root users stage in /tmp and let sudo place the file; root writes beside the target.
        let staged = privileged && target.user != "root"
        let sftpPath = staged ? "/tmp/muster-upload.\(suffix)" : finalTemp
        if !parent.isEmpty {
            let made = try await run("mkdir -p \(Shell.quote(parent))", privileged: privileged)
            guard made.succeeded else {
                throw failure("cannot create \(parent): \(made.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        let seconds = target.commandTimeout
        let sent = try await onLane { state in
            try state.sftpWrite(source, to: sftpPath, timeout: seconds, step: step, written: written)
        }
        let temp = Shell.quote(finalTemp)
        var script = ""
        if staged { script += "cp \(Shell.quote(sftpPath)) \(temp) && rm -f \(Shell.quote(sftpPath)) && " }
        script += settle.replacingOccurrences(of: "FILE", with: temp)
        // -T: a link at the target is replaced and a directory there is an error, never moved into.
        script += " && mv -fT \(temp) \(quoted) || { rc=$?; rm -f \(temp); exit $rc; }"
        let placed = try await run(script, privileged: privileged)
        if !placed.succeeded {
            if staged { _ = try? await run("rm -f \(Shell.quote(sftpPath))") }
            throw failure("cannot put the file in place: "
                          + placed.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return UploadResult(skipped: false, bytesSent: sent)
    }

    /// Forwards connections to a local 127.0.0.1 port through this session to `host:port` as the
    /// remote host sees it (direct-tcpip).
    public func openTunnel(toHost host: String, port: Int) async throws -> SSHTunnel {
        let core = try await onLane { state in try state.openTunnel(host: host, port: port) }
        return SSHTunnel(session: self, core: core)
    }

    /// The algorithms this session negotiated: key exchange, host key, ciphers and MACs.
    func negotiatedMethods() async throws -> [String] {
        try await onLane { state in
            guard let raw = state.session?.raw else { throw SSHError(host: state.target.name, step: "methods", kind: .closed, message: "closed") }
            return [LIBSSH2_METHOD_KEX, LIBSSH2_METHOD_HOSTKEY, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC,
                    LIBSSH2_METHOD_MAC_CS, LIBSSH2_METHOD_MAC_SC].map { libssh2_session_methods(raw, $0).map { String(cString: $0) } ?? "" }
        }
    }

    /// The session's socket, for tests of what children inherit.
    func socketDescriptor() async throws -> Int32 {
        try await onLane { state in
            guard let socket = state.session?.socket else { throw SSHError(host: state.target.name, step: "socket", kind: .closed, message: "closed") }
            return socket
        }
    }

    /// Disconnects. Further calls throw `SSHError.closed`.
    public func close() async {
        _ = try? await onLane { state in state.shutdown() }
    }
}

enum UploadSource: Sendable {
    case file(String)
    case data(Data)
}

/// The session's mutable state. Touched only on the lane.
final class LaneState: @unchecked Sendable {
    let target: SSHTarget
    let lane: DispatchQueue
    var session: SessionHandle?
    var sftp: SFTPHandle?
    var keepalive: DispatchSourceTimer?
    var tunnels: [TunnelCore] = []
    var pumpScheduled = false

    init(target: SSHTarget, lane: DispatchQueue) {
        self.target = target
        self.lane = lane
    }

    func live(_ step: String) throws -> SessionHandle {
        guard let session else {
            throw SSHError(host: target.name, step: step, kind: .closed, message: "the SSH session is closed")
        }
        return session
    }

    func open() throws {
        session = try Connector.open(target)
        let interval = max(1, target.keepaliveInterval)
        let timer = DispatchSource.makeTimerSource(queue: lane)
        timer.schedule(deadline: .now() + .seconds(interval), repeating: .seconds(interval))
        timer.setEventHandler { [unowned self] in
            guard let session = self.session else { return }
            var next: Int32 = 0
            _ = libssh2_keepalive_send(session.raw, &next)
        }
        timer.resume()
        keepalive = timer
    }

    func afterJob() {
        schedulePump()
    }

    func shutdown() {
        keepalive?.cancel()
        keepalive = nil
        for tunnel in tunnels { tunnel.shut() }
        tunnels = []
        sftp = nil
        session = nil
    }

    // MARK: Exec

    func exec(_ command: String, stdin: Data?, timeout: Double, stdinWritten: (@Sendable (Int) -> Void)? = nil,
              stdoutTo descriptor: Int32? = nil) throws -> CommandResult {
        let step = "run"
        let session = try live(step)
        let deadline = Deadline(seconds: timeout)
        let what = "after \(Connector.format(timeout)) s running \(command.prefix(200))"
        func fail(_ message: String) -> SSHError {
            if session.connectionLost {
                return session.error(step, .closed, "connection lost (the host went down, or its sshd stopped): \(message): \(session.lastError)")
            }
            return session.error(step, .exec, "\(message): \(session.lastError) (command: \(command.prefix(200)))")
        }
        guard let raw = try session.retryPointer(step, deadline, what: what, {
            muster_channel_open_session(session.raw)
        }) else { throw fail("cannot open a channel") }
        let channel = ChannelHandle(session: session, raw: raw)
        let started = try session.retry(step, deadline, what: what) {
            command.withCString { Int(muster_channel_exec(raw, $0, UInt32(command.utf8.count))) }
        }
        if started != 0 { throw fail("cannot start the command") }

        let input = stdin ?? Data()
        var inputOffset = 0
        var eofSent = false
        var stdout = Data(), stderr = Data()
        var stderrDropped = 0
        let size = 256 * 1024
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        defer { buffer.deallocate() }

        while true {
            if deadline.passed {
                throw session.error(step, .timeout, "timed out \(what)")
            }
            var progress = false
            if inputOffset < input.count {
                let rc = input.withUnsafeBytes { bytes in
                    Int(muster_channel_write(
                        raw, bytes.baseAddress!.assumingMemoryBound(to: CChar.self) + inputOffset,
                        input.count - inputOffset))
                }
                if rc > 0 { inputOffset += rc; progress = true; stdinWritten?(rc) }
                else if rc < 0 && rc != eagain {
                    // The command stopped reading (it failed, or exited early): its exit status
                    // and stderr say why, so collect them instead of failing on the write.
                    guard libssh2_channel_eof(raw) != 0 || rc == Int(LIBSSH2_ERROR_CHANNEL_CLOSED)
                            || rc == Int(LIBSSH2_ERROR_CHANNEL_EOF_SENT) else { throw fail("cannot write stdin") }
                    inputOffset = input.count
                    eofSent = true
                    progress = true
                }
            } else if !eofSent {
                let rc = Int(libssh2_channel_send_eof(raw))
                if rc == 0 { eofSent = true; progress = true }
                else if rc != eagain { throw fail("cannot send EOF") }
            }
            // Read both streams each round: they share one window, unread stderr stalls stdout.
            var drained = [false, false]
            for stream in 0..<2 {
                while true {
                    let n = stream == 0
                        ? Int(muster_channel_read(raw, buffer, size))
                        : Int(muster_channel_read_stderr(raw, buffer, size))
                    if n > 0 {
                        // A host cannot make muster hold more than the caps: stdout past its cap
                        // fails the command, stderr past its cap is counted and dropped.
                        if stream == 0, let descriptor {
                            // A file's bytes (`download`): written as they come, never held.
                            if let code = AtomicFile.writeAll(descriptor, UnsafeRawBufferPointer(start: buffer, count: n)) {
                                throw session.error(step, .exec, "cannot write what the command printed: \(String(cString: strerror(code)))")
                            }
                            progress = true
                            continue
                        }
                        if stream == 0 && stdout.count + n > CommandResult.maxStdoutBytes {
                            throw session.error(step, .exec, "the command printed more than \(CommandResult.maxStdoutBytes >> 20) MiB on stdout, muster's cap (command: \(command.prefix(200)))")
                        }
                        buffer.withMemoryRebound(to: UInt8.self, capacity: n) {
                            if stream == 0 {
                                stdout.append($0, count: n)
                            } else {
                                let room = max(CommandResult.maxStderrBytes - stderr.count, 0)
                                stderr.append($0, count: min(n, room))
                                stderrDropped += n - min(n, room)
                            }
                        }
                        progress = true
                        continue
                    }
                    if n == 0 { drained[stream] = true } else if n != eagain { throw fail("cannot read output") }
                    break
                }
            }
            if drained[0] && drained[1] && libssh2_channel_eof(raw) != 0 { break }
            if !progress { try session.waitSocket(step, deadline, what: what) }
        }
        // Exit status and signal arrive with the close: only read them after wait_closed.
        if try session.retry(step, deadline, what: what, { Int(libssh2_channel_close(raw)) }) != 0 {
            throw fail("cannot close the channel")
        }
        if try session.retry(step, deadline, what: what, { Int(libssh2_channel_wait_closed(raw)) }) != 0 {
            throw fail("cannot wait for the channel to close")
        }
        var status = libssh2_channel_get_exit_status(raw)
        var signalPointer: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        _ = libssh2_channel_get_exit_signal(raw, &signalPointer, &signalLength, nil, nil, nil, nil)
        var signal: String?
        if let signalPointer {
            signal = String(cString: signalPointer)
            libssh2_free(session.raw, signalPointer)
            status = -1
        }
        withExtendedLifetime(channel) {}
        if stderrDropped > 0 { stderr.append(Data("\n[muster: \(stderrDropped) more bytes of stderr dropped]\n".utf8)) }
        return CommandResult(stdout: stdout, stderr: stderr, exitStatus: status, exitSignal: signal)
    }

    // MARK: SFTP

    func sftpSubsystem(_ session: SessionHandle, _ step: String, _ deadline: Deadline) throws -> SFTPHandle {
        if let sftp { return sftp }
        guard let raw = try session.retryPointer(step, deadline, what: "starting SFTP", {
            libssh2_sftp_init(session.raw)
        }) else {
            throw session.error(step, .upload, "cannot start the SFTP subsystem: \(session.lastError)")
        }
        let handle = SFTPHandle(session: session, raw: raw)
        sftp = handle
        return handle
    }

    /// Writes `source` to `path` over SFTP, pipelined, then fsyncs and closes. Returns bytes sent.
    func sftpWrite(_ source: UploadSource, to path: String, timeout: Double, step: String,
                   written: (@Sendable (Int) -> Void)? = nil) throws -> Int {
        let session = try live(step)
        let deadline = Deadline(seconds: timeout)
        let what = "after \(Connector.format(timeout)) s uploading to \(path)"
        let sftp = try sftpSubsystem(session, step, deadline)
        func fail(_ message: String) -> SSHError {
            session.error(step, .upload,
                          "\(message): \(session.lastError), SFTP status \(sftp.lastStatus)")
        }
        let flags = UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC)
        guard let raw = try session.retryPointer(step, deadline, what: what, {
            path.withCString { muster_sftp_open_file(sftp.raw, $0, UInt32(path.utf8.count), flags, 0o600) }
        }) else { throw fail("cannot create \(path)") }
        let file = SFTPFileHandle(sftp: sftp, raw: raw)

        var reader = try SourceReader(source, host: target.name, step: step)
        defer { reader.close() }
        // A sliding buffer: unacknowledged bytes stay at its front (libssh2 1.10 pipelines a big
        // write as many 30 kB packets and wants the unacked tail passed again), new bytes are
        // read in behind them.
        let capacity = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var start = 0, end = 0, sent = 0
        var finished = false
        while true {
            if !finished && end - start < 4 << 20 {
                if capacity - end < 1 << 20 && start > 0 {
                    memmove(buffer, buffer + start, end - start)
                    end -= start
                    start = 0
                }
                let n = try reader.read(into: buffer + end, count: capacity - end)
                if n == 0 { finished = true } else { end += n }
            }
            if start == end {
                if finished { break }
                continue
            }
            if deadline.passed { throw session.error(step, .timeout, "timed out \(what)") }
            let rc = Int(libssh2_sftp_write(raw, (buffer + start).assumingMemoryBound(to: CChar.self),
                                            end - start))
            if rc == eagain {
                try session.waitSocket(step, deadline, what: what)
                continue
            }
            if rc < 0 { throw fail("cannot write \(path)") }
            start += rc
            sent += rc
            written?(rc)
        }
        if try session.retry(step, deadline, what: what, { Int(libssh2_sftp_fsync(raw)) }) != 0 {
            throw fail("cannot fsync \(path)")
        }
        file.closed = true
        if try session.retry(step, deadline, what: what, { Int(muster_sftp_close(raw)) }) != 0 {
            throw fail("cannot close \(path)")
        }
        return sent
    }
}

/// Reads an upload's bytes from a file or from memory.
struct SourceReader {
    var fd: Int32 = -1
    var data: Data?
    var offset = 0

    init(_ source: UploadSource, host: String, step: String) throws {
        switch source {
        case .file(let path):
            fd = Glibc.open(path, O_RDONLY)
            if fd < 0 {
                throw SSHError(host: host, step: step, kind: .upload,
                               message: "cannot open \(path): \(String(cString: strerror(errno)))")
            }
        case .data(let bytes):
            data = bytes
        }
    }

    mutating func read(into pointer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if let data {
            let n = min(count, data.count - offset)
            if n > 0 {
                data.withUnsafeBytes { bytes in
                    pointer.copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
                }
                offset += n
            }
            return n
        }
        while true {
            let n = Glibc.read(fd, pointer, count)
            if n >= 0 { return n }
            if errno != EINTR { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}
