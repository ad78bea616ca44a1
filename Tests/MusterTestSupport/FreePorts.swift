import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ports for child processes (etcd, `muster discovery serve`) that must be told their ports on
/// the command line, so the kernel cannot pick them (port 0) for us: we probe random ports by
/// binding and releasing them. A wide random range keeps two test processes (or two suites)
/// from picking the same ports; there is still a small window between the probe and the child's
/// own bind, which the tests accept.
public enum FreePorts {
    /// Above the well-known and registered ports most daemons use, below the top of Linux's
    /// ephemeral range.
    public static let searchRange = 20000..<60000

    /// How many random ports to try before giving up: bounded, so a machine with everything
    /// taken fails the test instead of hanging it.
    public static let maximumAttempts = 1000

    /// `count` distinct ports in `searchRange` that `address` can bind right now.
    public static func pick(_ count: Int, on address: String = "127.0.0.1") throws -> [Int] {
        var ports: [Int] = []
        for _ in 0..<maximumAttempts where ports.count < count {
            let port = Int.random(in: searchRange)
            if !ports.contains(port) && canBind(port, on: address) { ports.append(port) }
        }
        guard ports.count == count else {
            throw HarnessError(description: "no free ports on \(address): found \(ports.count) of \(count) in \(searchRange) after \(maximumAttempts) tries")
        }
        return ports
    }

    /// True when a TCP socket can bind `address:port` at this moment (the socket is closed again
    /// at once).
    public static func canBind(_ port: Int, on address: String = "127.0.0.1") -> Bool {
        withSocket(port, on: address) { fd, socketAddress in bind(fd, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }

    /// True when something accepts a TCP connection on `address:port` at this moment: bound is
    /// not yet listening, so a server is up only once this holds.
    public static func accepts(_ port: Int, on address: String = "127.0.0.1") -> Bool {
        withSocket(port, on: address) { fd, socketAddress in connect(fd, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }

    private static func withSocket(_ port: Int, on address: String, _ body: (Int32, UnsafePointer<sockaddr>) -> Bool) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr.s_addr = inet_addr(address)
        return withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0) }
        }
    }
}
