import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

struct KnownHostsError: Error, CustomStringConvertible {
    var description: String
}

/// An OpenSSH known_hosts file, read line by line with its markers and line numbers, and matched
/// in Swift: libssh2's knownhost API drops `@revoked` and `@cert-authority` lines and compares host
/// names literally (no `*`, `?` or `!` patterns), and cannot say which line it used.
struct KnownHosts {
    enum Marker: Equatable {
        case none, revoked, certAuthority
    }

    struct Entry {
        var line: Int
        var marker: Marker
        var hostPatterns: String
        var keyType: String
        var key: Data
    }

    /// What the file says about one host and the key its server offered.
    enum Verdict {
        /// A plain line for this host holds this key.
        case known(Entry)
        /// A `@revoked` line holds this key: never accepted, whatever the host patterns.
        case revoked(Entry)
        /// Only a `@cert-authority` line vouches for this host (libssh2 cannot check certificates).
        case certifiedOnly(Entry)
        /// A plain line pins another key of the same type for this host.
        case changed(Entry)
        /// Nothing for this host, or only keys of other types (OpenSSH calls both "new").
        case unknown(otherTypes: [Entry])
    }

    let path: String
    let entries: [Entry]

    /// A missing file is an empty one, as for OpenSSH; one that exists but cannot be read is an
    /// error (read as empty, its pins and `@revoked` lines would be ignored). Read as bytes: a
    /// line that is not UTF-8 spoils only itself, never the file.
    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            var status = stat()
            if lstat(path, &status) != 0 && errno == ENOENT {
                entries = []
                return
            }
            throw KnownHostsError(description: "known_hosts file \(path) exists but cannot be read (\(String(cString: strerror(errno)))); muster will not take it for empty")
        }
        entries = Self.parse(String(decoding: data, as: UTF8.self))
    }

    init(path: String, text: String) {
        self.path = path
        entries = Self.parse(text)
    }

    /// Lines OpenSSH would ignore (comments, unknown markers, bad base64) are skipped the same way.
    static func parse(_ text: String) -> [Entry] {
        var result = [Entry]()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            var marker = Marker.none
            if first.hasPrefix("@") {
                switch first {
                case "@revoked": marker = .revoked
                case "@cert-authority": marker = .certAuthority
                default: continue
                }
                fields.removeFirst()
            }
            guard fields.count >= 3, let key = Data(base64Encoded: String(fields[2])) else { continue }
            result.append(Entry(line: index + 1, marker: marker, hostPatterns: String(fields[0]),
                                keyType: String(fields[1]), key: key))
        }
        return result
    }

    /// `name` is how known_hosts names the host: `address`, or `[address]:port` off port 22.
    func verdict(for name: String, key: Data) -> Verdict {
        if let revoked = entries.first(where: { $0.marker == .revoked && $0.key == key }) {
            return .revoked(revoked)
        }
        let forHost = entries.filter { $0.marker != .revoked && Self.matches(name, $0.hostPatterns) }
        let plain = forHost.filter { $0.marker == .none }
        if let same = plain.first(where: { $0.key == key }) { return .known(same) }
        if let authority = forHost.first(where: { $0.marker == .certAuthority }) {
            return .certifiedOnly(authority)
        }
        let type = Connector.keyTypeName(key)
        if let pinned = plain.first(where: { $0.keyType == type }) { return .changed(pinned) }
        return .unknown(otherTypes: plain)
    }

    /// The key types plain lines pin for `name`, in file order and without repeats.
    func pinnedKeyTypes(for name: String) -> [String] {
        var types = [String]()
        for entry in entries where entry.marker == .none && Self.matches(name, entry.hostPatterns) {
            if !types.contains(entry.keyType) { types.append(entry.keyType) }
        }
        return types
    }

    // MARK: Host patterns, as OpenSSH's match_hostname

    /// A hashed field (`|1|salt|hash`) matches by HMAC-SHA1; a pattern list matches when some
    /// pattern does and no negated (`!`) one does. Case-insensitive, like OpenSSH.
    static func matches(_ name: String, _ patterns: String) -> Bool {
        if patterns.hasPrefix("|1|") {
            let parts = patterns.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, let salt = Data(base64Encoded: String(parts[2])),
                  let hash = Data(base64Encoded: String(parts[3])) else { return false }
            return Digest.hmacSHA1(key: salt, message: Data(name.utf8)) == hash
        }
        let host = Array(name.lowercased().utf8)
        var positive = false
        for pattern in patterns.lowercased().split(separator: ",") {
            if pattern.hasPrefix("!") {
                if glob(Array(pattern.dropFirst().utf8)[...], host[...]) { return false }
            } else if glob(Array(pattern.utf8)[...], host[...]) {
                positive = true
            }
        }
        return positive
    }

    /// `*` any run, `?` any one byte.
    static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let head = pattern.first else { return text.isEmpty }
        let rest = pattern.dropFirst()
        switch head {
        case UInt8(ascii: "*"):
            var tail = text
            while true {
                if glob(rest, tail) { return true }
                guard !tail.isEmpty else { return false }
                tail = tail.dropFirst()
            }
        case UInt8(ascii: "?"):
            return !text.isEmpty && glob(rest, text.dropFirst())
        default:
            return text.first == head && glob(rest, text.dropFirst())
        }
    }
}
