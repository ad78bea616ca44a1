internal import CLibSSH2
import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// libssh2_init, once per process, before any lane starts.
public enum SSH {
    private static let initialized: Int32 = libssh2_init(0)

    /// Idempotent; `SSHSession.connect` calls it too.
    public static func initialize() {
        precondition(initialized == 0, "libssh2_init failed: \(initialized)")
    }
}

let eagain = Int(LIBSSH2_ERROR_EAGAIN)

/// Owns a LIBSSH2_SESSION and its socket. Used only on its lane. The session stays in
/// non-blocking mode: every call goes through `retry`, which polls the socket in the directions
/// libssh2 is waiting for, up to a deadline (never a busy spin). Cleanup in deinits switches to
/// blocking mode, bounded by `libssh2_session_set_timeout`.
final class SessionHandle {
    let raw: OpaquePointer
    let socket: Int32
    let host: String
    var timeoutMilliseconds: Int

    init(raw: OpaquePointer, socket: Int32, host: String, timeoutMilliseconds: Int) {
        self.raw = raw
        self.socket = socket
        self.host = host
        self.timeoutMilliseconds = timeoutMilliseconds
        libssh2_session_set_blocking(raw, 0)
        libssh2_session_set_timeout(raw, timeoutMilliseconds)
    }

    deinit {
        libssh2_session_set_timeout(raw, 2000)
        libssh2_session_set_blocking(raw, 1)
        _ = muster_session_disconnect(raw, "muster: done")
        libssh2_session_free(raw)
        close(socket)
    }

    /// libssh2's last error message for this session, e.g. "Unable to ... (-18)".
    var lastError: String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = libssh2_session_last_error(raw, &message, &length, 0)
        let text = message.map { String(cString: $0) } ?? ""
        return text.isEmpty ? "libssh2 error \(code)" : "\(text) (libssh2 \(code))"
    }

    var lastErrno: Int { Int(libssh2_session_last_errno(raw)) }

    /// Whether the last call failed because the TCP connection itself is gone (the peer reset or
    /// closed it): the host went down or its sshd was stopped, whatever the call was doing.
    var connectionLost: Bool {
        [LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_DISCONNECT].map(Int.init).contains(lastErrno)
    }

    func error(_ step: String, _ kind: SSHError.Kind, _ message: String) -> SSHError {
        SSHError(host: host, step: step, kind: kind, message: message)
    }

    /// Runs `body` in blocking mode with a short timeout (for frees in deinits).
    func blockingCleanup(_ body: () -> Void) {
        libssh2_session_set_timeout(raw, 5000)
        libssh2_session_set_blocking(raw, 1)
        body()
        libssh2_session_set_blocking(raw, 0)
        libssh2_session_set_timeout(raw, timeoutMilliseconds)
    }

    /// Waits until the socket is ready in the direction libssh2 last blocked on.
    func waitSocket(_ step: String, _ deadline: Deadline, what: String = "") throws {
        let remaining = deadline.remainingMilliseconds
        if remaining <= 0 {
            throw error(step, .timeout, "timed out" + (what.isEmpty ? "" : " " + what))
        }
        let directions = libssh2_session_block_directions(raw)
        var events: Int16 = 0
        if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
        if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        // No recorded direction: libssh2 is waiting for the peer; wait for input, briefly.
        let cap = events == 0 ? 100 : 1000
        if events == 0 { events = Int16(POLLIN) }
        // sshd leaves Nagle on for sessions without a pty, so its second small packet waits for
        // our ACK of the first, and Linux delays that ACK by 40 ms or more: measured, every
        // first command on a connection stalled ~45 ms. Quick-ack mode ends on its own, so it is
        // re-armed before each wait.
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
        var fd = pollfd(fd: socket, events: events, revents: 0)
        _ = poll(&fd, 1, Int32(min(remaining, cap)))
    }

    /// Calls `body` until it returns something other than EAGAIN; returns that code.
    @discardableResult
    func retry(_ step: String, _ deadline: Deadline, what: String = "",
               _ body: () -> Int) throws -> Int {
        while true {
            let rc = body()
            if rc != eagain { return rc }
            try waitSocket(step, deadline, what: what)
        }
    }

    /// Like `retry` for calls that return a pointer, NULL with EAGAIN meaning "again".
    func retryPointer(_ step: String, _ deadline: Deadline, what: String = "",
                      _ body: () -> OpaquePointer?) throws -> OpaquePointer? {
        while true {
            if let pointer = body() { return pointer }
            if lastErrno != eagain { return nil }
            try waitSocket(step, deadline, what: what)
        }
    }
}

/// Owns a LIBSSH2_CHANNEL; keeps its session alive.
final class ChannelHandle {
    let session: SessionHandle
    let raw: OpaquePointer

    init(session: SessionHandle, raw: OpaquePointer) {
        self.session = session
        self.raw = raw
    }

    deinit {
        let raw = raw
        session.blockingCleanup { _ = libssh2_channel_free(raw) }
    }
}

/// Owns a LIBSSH2_SFTP subsystem; keeps its session alive.
final class SFTPHandle {
    let session: SessionHandle
    let raw: OpaquePointer

    init(session: SessionHandle, raw: OpaquePointer) {
        self.session = session
        self.raw = raw
    }

    deinit {
        let raw = raw
        session.blockingCleanup { _ = libssh2_sftp_shutdown(raw) }
    }

    /// The SFTP status code of the last failed request (2 no such file, 3 permission denied...).
    var lastStatus: UInt { UInt(libssh2_sftp_last_error(raw)) }
}

/// Owns an open SFTP file handle; keeps the SFTP subsystem alive.
final class SFTPFileHandle {
    let sftp: SFTPHandle
    let raw: OpaquePointer
    var closed = false

    init(sftp: SFTPHandle, raw: OpaquePointer) {
        self.sftp = sftp
        self.raw = raw
    }

    deinit {
        guard !closed else { return }
        let raw = raw
        sftp.session.blockingCleanup { _ = muster_sftp_close(raw) }
    }
}

/// Owns a LIBSSH2_AGENT connection.
final class AgentHandle {
    let session: SessionHandle
    let raw: OpaquePointer
    var connected = false

    init?(session: SessionHandle) {
        guard let raw = libssh2_agent_init(session.raw) else { return nil }
        self.session = session
        self.raw = raw
    }

    deinit {
        if connected { _ = libssh2_agent_disconnect(raw) }
        libssh2_agent_free(raw)
    }
}
