import Foundation

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

    /// Decodes `application/x-www-form-urlencoded` text (a query string or a form body): `+` is
    /// a space, `%XX` an octet. Nil when an escape is malformed or a name repeats.
    public static func decodeForm(_ text: String) -> [(name: String, value: String)]? {
        var pairs: [(name: String, value: String)] = []
        for part in text.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(pieces[0]), !name.isEmpty,
                  let value = pieces.count > 1 ? unescape(pieces[1]) : "" else { return nil }
            if pairs.contains(where: { $0.name == name }) { return nil }
            pairs.append((name, value))
        }
        return pairs
    }

    /// Encodes pairs as a form body or query string, escaping all but RFC 3986 unreserved octets.
    public static func encodeForm(_ pairs: [(name: String, value: String)]) -> String {
        pairs.map { escape($0.name) + "=" + escape($0.value) }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var unreserved = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        unreserved.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    static func unescape(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...122).contains(byte) || (65...90).contains(byte)
    }
}
