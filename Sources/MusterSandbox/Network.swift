import Foundation
import MusterBasics

/// IPv4 arithmetic and the machine's routes, read with `ip` (never changed outside the sandbox).
enum Network {
    static func parse(_ address: String) -> UInt32? {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func format(_ value: UInt32) -> String {
        (0..<4).reversed().map { String((value >> (8 * UInt32($0))) & 0xff) }.joined(separator: ".")
    }

    /// `10.1.0.0/16` or `10.1.2.3` (a /32) as (network, prefix length).
    static func parsePrefix(_ text: String) -> (UInt32, Int)? {
        let parts = text.split(separator: "/")
        guard let base = parse(String(parts[0])) else { return nil }
        let length = parts.count > 1 ? Int(parts[1]) ?? -1 : 32
        guard (0...32).contains(length) else { return nil }
        return (base & mask(length), length)
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << UInt32(32 - length) }

    static func overlaps(_ a: (UInt32, Int), _ b: (UInt32, Int)) -> Bool {
        let length = min(a.1, b.1)
        return a.0 & mask(length) == b.0 & mask(length)
    }

    /// Every IPv4 prefix the machine routes or holds an address in, in any table, except the
    /// default route (which covers everything and is exactly what the sandbox must not use).
    static func usedPrefixes() throws -> [(UInt32, Int)] {
        let routes = try LocalProcess.check(["/usr/sbin/ip", "-o", "-4", "route", "show", "table", "all"])
        let addresses = try LocalProcess.check(["/usr/sbin/ip", "-o", "-4", "addr", "show"])
        var used: [(UInt32, Int)] = []
        let routeTypes: Set<Substring> = ["unicast", "local", "broadcast", "multicast", "throw",
                                          "unreachable", "prohibit", "blackhole", "nat", "anycast"]
        for line in routes.stdoutText.split(separator: "\n") {
            var words = line.split(separator: " ")[...]
            if let first = words.first, routeTypes.contains(first) { words = words.dropFirst() }
            guard let destination = words.first, destination != "default",
                  let prefix = parsePrefix(String(destination)) else { continue }
            used.append(prefix)
        }
        for line in addresses.stdoutText.split(separator: "\n") {
            let words = line.split(separator: " ")
            if let index = words.firstIndex(of: "inet"), index + 1 < words.count,
               let prefix = parsePrefix(String(words[index + 1])) {
                used.append(prefix)
            }
        }
        return used
    }

    /// The first `10.213.X.0/24` (X from 7) that nothing on the machine routes or addresses.
    static func pickSubnet() throws -> UInt32 {
        let used = try usedPrefixes()
        for third in UInt32(7)...250 {
            let candidate = (UInt32(10) << 24 | UInt32(213) << 16 | third << 8, 24)
            if !used.contains(where: { overlaps($0, candidate) }) { return candidate.0 }
        }
        throw SandboxError("no free /24 in 10.213.7.0-10.213.250.0: every one is already routed here")
    }

    /// One answer of `ip -o route get ADDRESS`: the device traffic leaves through, and whether
    /// the address is one of this machine's own (`local ... dev lo`).
    struct Route: Equatable {
        var device: String
        var isLocal: Bool
    }

    /// The route to each address, from one `ip -batch` (a process per address cost more than
    /// connecting to a 15-host sandbox).
    static func routes(to addresses: [String]) throws -> [String: Route] {
        for address in addresses where parse(address) == nil {
            throw SandboxError("'\(address)' is not an IPv4 address")
        }
        let unique = Array(Set(addresses)).sorted()
        guard !unique.isEmpty else { return [:] }
        let input = unique.map { "route get \($0)\n" }.joined()
        let result = try LocalProcess.check(["/usr/sbin/ip", "-o", "-batch", "-"], input: Data(input.utf8))
        let routes = routes(in: result.stdoutText)
        for address in unique where routes[address] == nil {
            throw SandboxError("cannot read the route to \(address) from: \(result.stdoutText)")
        }
        return routes
    }

    /// `ip -o route get` lines by destination. A line may start with the route's type
    /// (`local 10.213.7.1 dev lo table local src ...` for an address of this machine; `unicast`
    /// and the like are possible too); a line without a `dev` (unreachable) names no route.
    static func routes(in text: String) -> [String: Route] {
        let types: Set<Substring> = ["unicast", "local", "broadcast", "multicast", "anycast", "blackhole",
                                     "unreachable", "prohibit", "throw", "nat"]
        var routes: [String: Route] = [:]
        for line in text.split(separator: "\n") {
            var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            var isLocal = false
            if let type = words.first, types.contains(type) {
                isLocal = type == "local"
                words.removeFirst()
            }
            guard let destination = words.first, parse(String(destination)) != nil,
                  let index = words.firstIndex(of: "dev"), index + 1 < words.count else { continue }
            routes[String(destination)] = Route(device: String(words[index + 1]), isLocal: isLocal)
        }
        return routes
    }

    static func linkExists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: "/sys/class/net/\(name)")
    }

    static func namespaces() -> Set<String> {
        let result = try? LocalProcess.run(["/usr/sbin/ip", "netns", "list"])
        let names = (result?.stdoutText ?? "").split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map(String.init)
        }
        return Set(names)
    }
}
