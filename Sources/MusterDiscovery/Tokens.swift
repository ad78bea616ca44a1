import Foundation
import MusterEtcd

/// What the service accepts from the outside: tokens, member keys, sizes, query parameters and
/// form bodies. Every check is a plain function so the tests can hit each one without a server.
public enum DiscoveryRules {
    /// `GET /new` without `size` makes a token for this many members.
    public static let defaultSize = 3
    /// A discovery cluster of 1-99 members (etcd itself caps nothing; 99 keeps a typo like
    /// `size=1000` from making a token no cluster can ever fill).
    public static let sizes = 1...99

    /// A fresh token: 128 random bits as 32 lowercase hex digits (the shape discovery.etcd.io
    /// hands out).
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// Tokens are hex digits and dashes (ours are 32 hex digits; a `uuidgen` UUID also fits),
    /// 8 to 64 of them. Nothing else reaches the backing etcd's key space.
    public static func isValidToken(_ token: some StringProtocol) -> Bool {
        (8...64).contains(token.utf8.count)
            && token.utf8.allSatisfy { isHexDigit($0) || $0 == UInt8(ascii: "-") }
    }

    /// A key under a token: what etcd's discovery client writes is the member ID in hex; letters,
    /// digits, `.`, `_`, `-` are accepted, at most 64, never starting with `_` (hidden keys are the
    /// service's own) or `.`.
    public static func isValidMemberKey(_ key: some StringProtocol) -> Bool {
        guard (1...64).contains(key.utf8.count), let first = key.utf8.first,
              first != UInt8(ascii: "_"), first != UInt8(ascii: ".") else { return false }
        return key.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// `size` as `/new` and `PUT /TOKEN/_config/size` take it: absent means the default, anything
    /// but a plain decimal in `sizes` is refused.
    public static func parseSize(_ text: String?) -> Int? {
        guard let text else { return defaultSize }
        guard !text.isEmpty, text.utf8.count <= 3, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let size = Int(text), sizes.contains(size) else { return nil }
        return size
    }

    /// The v2 keys query parameters the service forwards, per method: what etcd's discovery
    /// client and etcdctl v2 send. Anything else (`dir`, `stream`, `ttl`...) is refused.
    public static let forwardedParameters: [String: Set<String>] = [
        "GET": ["wait", "waitIndex", "recursive", "sorted", "quorum"],
        "PUT": ["prevExist", "prevIndex", "prevValue", "noValueOnSuccess"],
        "DELETE": ["prevIndex", "prevValue"],
    ]

    /// A form body or query string holds at most this many pairs: etcd's discovery client sends
    /// one (`value=...`) and at most four parameters; more is refused before any work.
    public static let maxFormPairs = 16

    /// A member's value is `name=peerURL[,peerURL...]`: a few hundred bytes. Longer values are
    /// refused (a token's storage is bounded by this times its member key limit).
    public static let maxValueBytes = 4096

    /// How many member keys a token of `size` may hold: every member once, the same again for
    /// members that re-register with a new ID after losing their data, and a few more.
    public static func maxMemberKeys(size: Int) -> Int { 2 * size + 4 }

    /// How many long polls may wait on a token of `size` at once (each member waits once; the
    /// slack covers a client whose previous poll is still being torn down, and an operator).
    public static func maxLongPolls(size: Int) -> Int { 2 * size + 4 }

    /// Decodes `application/x-www-form-urlencoded` text (a query string or a form body): `+` is
    /// a space, `%XX` an octet. Nil when an escape is malformed, a name repeats, a name or value
    /// is not UTF-8, or there are more than `maxFormPairs` pairs. One pass over the bytes: its
    /// cost is linear in the text's length whatever its shape.
    public static func decodeForm(_ text: String) -> [(name: String, value: String)]? {
        var pairs: [(name: String, value: String)] = []
        var names = Set<String>()
        var text = text
        let decoded = text.withUTF8 { decode($0, into: &pairs, names: &names) }
        return decoded ? pairs : nil
    }

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, into pairs: inout [(name: String, value: String)],
                               names: inout Set<String>) -> Bool {
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                guard pairs.count < maxFormPairs else { return false }
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                guard let name = unescape(bytes, start, equals), !name.isEmpty,
                      let value = equals < end ? unescape(bytes, equals + 1, end) : "",
                      names.insert(name).inserted else { return false }
                pairs.append((name, value))
            }
            start = end + 1
        }
        return true
    }

    /// `bytes[from..<to]` with `+` as space and `%XX` decoded; nil on a bad escape or non-UTF-8.
    private static func unescape(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(to - from)
        var index = from
        while index < to {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < to,
                      let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: return byte - 48
        case 97...102: return byte - 87
        case 65...70: return byte - 55
        default: return nil
        }
    }

    /// Encodes pairs as a form body or query string, escaping all but RFC 3986 unreserved octets.
    public static func encodeForm(_ pairs: [(name: String, value: String)]) -> String {
        V2Keys.encodeForm(pairs)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...122).contains(byte) || (65...90).contains(byte)
    }
}
