internal import CLibSSH2
import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// A local 127.0.0.1 port whose connections are forwarded through an SSH session to a host and
/// port as the remote side sees them (direct-tcpip), for this process only (`LoopbackPeer`).
/// Keeps its session alive until closed.
///
/// Forwarding runs on the session's lane between its other jobs: while a long command runs on
/// the same session, tunnel traffic waits for it.
public final class SSHTunnel: Sendable {
    public let localPort: Int
    public let remoteHost: String
    public let remotePort: Int
    let session: SSHSession
    let core: TunnelCore

    init(session: SSHSession, core: TunnelCore) {
        self.session = session
        self.core = core
        localPort = core.localPort
        remoteHost = core.remoteHost
        remotePort = core.remotePort
    }

    deinit {
        let core = core, state = session.state
        session.lane.async { state.closeTunnel(core) }
    }

    /// Stops listening and drops the forwarded connections.
    public func close() async {
        let core = core
        _ = try? await session.onLane { state in state.closeTunnel(core) }
    }
}

/// One forwarded TCP connection.
final class Forward {
    let fd: Int32
    let channel: ChannelHandle
    var toRemote = [UInt8]()
    var toLocal = [UInt8]()
    var localEOF = false, eofSent = false, remoteEOF = false, localShut = false, broken = false

    init(fd: Int32, channel: ChannelHandle) {
        self.fd = fd
        self.channel = channel
    }

    deinit { close(fd) }

    var finished: Bool { broken || (localEOF && eofSent && remoteEOF && toLocal.isEmpty) }

    /// Moves what can move without blocking; returns whether anything did.
    func pass(_ scratch: UnsafeMutablePointer<CChar>, _ size: Int) -> Bool {
        var progress = false
        let raw = channel.raw
        if !localEOF && toRemote.count < 1 << 20 {
            let n = recv(fd, scratch, size, 0)
            if n > 0 {
                toRemote.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: n))
                progress = true
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                localEOF = true
                progress = true
            }
        }
        if !toRemote.isEmpty {
            let rc = toRemote.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { Int(muster_channel_write(raw, $0.baseAddress!, $0.count)) }
            }
            if rc > 0 { toRemote.removeFirst(rc); progress = true }
            else if rc < 0 && rc != eagain { broken = true }
        }
        if localEOF && toRemote.isEmpty && !eofSent {
            let rc = Int(libssh2_channel_send_eof(raw))
            if rc == 0 { eofSent = true; progress = true } else if rc != eagain { broken = true }
        }
        if !remoteEOF && toLocal.count < 1 << 20 {
            let n = Int(muster_channel_read(raw, scratch, size))
            if n > 0 {
                toLocal.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: n))
                progress = true
            } else if n == 0 && libssh2_channel_eof(raw) != 0 {
                remoteEOF = true
                progress = true
            } else if n < 0 && n != eagain {
                broken = true
            }
        }
        if !toLocal.isEmpty {
            let n = toLocal.withUnsafeBufferPointer { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { toLocal.removeFirst(n); progress = true }
            else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { broken = true }
        }
        if remoteEOF && toLocal.isEmpty && !localShut {
            shutdown(fd, Int32(SHUT_WR))
            localShut = true
        }
        return progress
    }
}

/// A tunnel's listener and connections. Touched only on the lane.
final class TunnelCore: @unchecked Sendable {
    let listener: Int32
    let localPort: Int
    let remoteHost: String
    let remotePort: Int
    var source: DispatchSourceRead?
    var forwards = [Forward]()
    var open = true

    init(listener: Int32, localPort: Int, remoteHost: String, remotePort: Int) {
        self.listener = listener
        self.localPort = localPort
        self.remoteHost = remoteHost
        self.remotePort = remotePort
    }

    func shut() {
        guard open else { return }
        open = false
        forwards = []
        if let source { source.cancel() } else { close(listener) }
    }
}

extension LaneState {
    func openTunnel(host: String, port: Int) throws -> TunnelCore {
        let step = "tunnel to \(host):\(port)"
        let session = try live(step)
        func fail(_ message: String) -> SSHError {
            SSHError(host: target.name, step: step, kind: .tunnel, message: message)
        }
        // Probe once so a refused forward (AllowTcpForwarding no, nothing listening) fails here.
        _ = try openChannel(session, host: host, port: port, step: step)

        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw fail("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let text = String(cString: strerror(errno))
            close(fd)
            throw fail("cannot listen on 127.0.0.1: \(text)")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
        let core = TunnelCore(listener: fd, localPort: Int(UInt16(bigEndian: address.sin_port)),
                              remoteHost: host, remotePort: port)
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: lane)
        source.setEventHandler { [unowned self, unowned core] in self.accept(core, step: step) }
        source.setCancelHandler { close(fd) }
        core.source = source
        source.resume()
        tunnels.append(core)
        return core
    }

    func openChannel(_ session: SessionHandle, host: String, port: Int, step: String) throws -> ChannelHandle {
        let deadline = Deadline(seconds: target.connectTimeout)
        guard let raw = try session.retryPointer(step, deadline, what: "opening the forwarded channel", {
            libssh2_channel_direct_tcpip_ex(session.raw, host, Int32(port), "127.0.0.1", 0)
        }) else {
            throw SSHError(host: target.name, step: step, kind: .tunnel,
                           message: "the server refused to forward to \(host):\(port): \(session.lastError)")
        }
        return ChannelHandle(session: session, raw: raw)
    }

    func accept(_ core: TunnelCore, step: String) {
        while core.open {
            let fd = Glibc.accept(core.listener, nil, nil)
            if fd < 0 { break }
            // Another local process (any user's) gets its connection closed unanswered.
            guard LoopbackPeer.isThisProcess(fd) else {
                close(fd)
                continue
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
            guard let session, let channel = try? openChannel(session, host: core.remoteHost,
                                                               port: core.remotePort, step: step)
            else {
                close(fd)
                continue
            }
            core.forwards.append(Forward(fd: fd, channel: channel))
        }
        schedulePump()
    }

    func closeTunnel(_ core: TunnelCore) {
        core.shut()
        tunnels.removeAll { $0 === core }
    }

    /// Keeps forwarding while any tunnel has a connection: one pass, then (when nothing moved) a
    /// poll of at most 50 ms, then re-queued behind other jobs on the lane.
    func schedulePump() {
        guard !pumpScheduled, session != nil, tunnels.contains(where: { !$0.forwards.isEmpty }) else { return }
        pumpScheduled = true
        lane.async { [self] in
            pumpScheduled = false
            pump()
        }
    }

    func pump() {
        guard let session else { return }
        let size = 64 * 1024
        let scratch = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        defer { scratch.deallocate() }
        var progress = false
        for tunnel in tunnels {
            for forward in tunnel.forwards where forward.pass(scratch, size) { progress = true }
            tunnel.forwards.removeAll { $0.finished }
        }
        let active = tunnels.flatMap(\.forwards)
        if active.isEmpty { return }
        if !progress {
            var fds = active.map { forward -> pollfd in
                var events: Int16 = 0
                if !forward.localEOF { events |= Int16(POLLIN) }
                if !forward.toLocal.isEmpty { events |= Int16(POLLOUT) }
                return pollfd(fd: forward.fd, events: events, revents: 0)
            }
            var sessionEvents = Int16(POLLIN)
            if libssh2_session_block_directions(session.raw) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 {
                sessionEvents |= Int16(POLLOUT)
            }
            fds.append(pollfd(fd: session.socket, events: sessionEvents, revents: 0))
            _ = poll(&fds, nfds_t(fds.count), 50)
        }
        schedulePump()
    }
}
