import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A bounded TCP connect from the controller, to learn whether a member's port answers.
enum PortProbe {
    /// The probe's poll(2) may wait up to the timeout: it runs on a dispatch thread, never on one
    /// of the cooperative pool's.
    static func isOpen(host: String, port: Int, timeoutMilliseconds: Int32 = 200) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: isOpenBlocking(host: host, port: port, timeoutMilliseconds: timeoutMilliseconds))
            }
        }
    }

    static func isOpenBlocking(host: String, port: Int, timeoutMilliseconds: Int32) -> Bool {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0
    }
}
