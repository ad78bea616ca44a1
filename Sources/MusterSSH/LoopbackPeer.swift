import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of a connection accepted on 127.0.0.1: a tunnel serves only muster's
/// own process. Any local user can connect to a loopback port, so each connection's client
/// socket is looked up in /proc/net/tcp (by the two ends' addresses) and its inode must be one
/// of this process's open sockets. A Unix socket in a private directory would need every HTTP
/// client URL (and TLS's host name check) rewritten; this keeps the tunnel a plain port.
enum LoopbackPeer {
    static func isThisProcess(_ accepted: Int32) -> Bool {
        guard let local = address(of: accepted, peer: false), let peer = address(of: accepted, peer: true),
              let inode = clientInode(local: local, peer: peer) else { return false }
        return ownSocketInodes().contains(inode)
    }

    struct Endpoint: Equatable {
        var address: UInt32  // as stored in sin_addr (network order), which /proc prints as hex
        var port: UInt16
    }

    static func address(of fd: Int32, peer: Bool) -> Endpoint? {
        var storage = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        guard rc == 0, storage.sin_family == sa_family_t(AF_INET) else { return nil }
        return Endpoint(address: storage.sin_addr.s_addr, port: UInt16(bigEndian: storage.sin_port))
    }

    /// The inode of the socket whose local end is `peer` and remote end is `local`: the client's.
    static func clientInode(local: Endpoint, peer: Endpoint) -> String? {
        guard let table = readProcFile("/proc/net/tcp") else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9, parse(fields[1]) == peer, parse(fields[2]) == local else { continue }
            return String(fields[9])
        }
        return nil
    }

    /// "0100007F:1F90" (address as the kernel's u32 in hex, port in hex).
    static func parse(_ field: Substring) -> Endpoint? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let address = UInt32(parts[0], radix: 16), let port = UInt16(parts[1], radix: 16)
        else { return nil }
        return Endpoint(address: address, port: port)
    }

    static func ownSocketInodes() -> Set<String> {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return [] }
        var inodes = Set<String>()
        var buffer = [CChar](repeating: 0, count: 64)
        for name in names {
            let count = readlink("/proc/self/fd/" + name, &buffer, buffer.count - 1)
            guard count > 0 else { continue }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("socket:["), target.hasSuffix("]") {
                inodes.insert(String(target.dropFirst(8).dropLast()))
            }
        }
        return inodes
    }

    /// /proc files report size 0: read until end of file, bounded.
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count < 64 << 20 {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }
}
