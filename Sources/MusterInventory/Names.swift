import Foundation
import MusterBasics

/// What a name, address or path may look like. Every value here ends up in a remote shell
/// command, a file path or an etcd flag, so the rules are strict rather than clever.
public enum Names {
    /// True when all of `value` matches `pattern`, which is written without anchors. `\A` and
    /// `\z` rather than `^` and `$`: ICU's `$` also matches before a final line break, so
    /// `^main$` took "main\n".
    static func matches(_ value: String, _ pattern: String) -> Bool {
        !hasControlCharacter(value)
            && value.range(of: #"\A(?:"# + pattern + #")\z"#, options: .regularExpression) != nil
    }

    /// C0 controls (NUL, line breaks, ESC...), DEL and C1 controls (NEL...), and the Unicode
    /// line and paragraph separators, which YAML and ICU also take for line breaks. None belongs
    /// in a name or path, and each can end a shell word, a line of a config file or a C string.
    public static func hasControlCharacter(_ value: String) -> Bool { firstControlCharacter(value) != nil }

    static func firstControlCharacter(_ value: String) -> Unicode.Scalar? {
        value.unicodeScalars.first {
            switch $0.properties.generalCategory {
            case .control, .lineSeparator, .paragraphSeparator: return true
            default: return false
            }
        }
    }

    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`, checked byte by byte: an inventory names every host
    /// (1,500 of them in the render benchmark), and each `matches` compiles its pattern anew.
    public static func isValidHostName(_ name: String) -> Bool {
        isWord(name, first: { isLetterOrDigit($0) }, rest: { isLetterOrDigit($0) || "._-".utf8.contains($0) }, longest: 63)
    }

    /// Cluster names become systemd unit names, directory names and dnsmasq file names:
    /// `[a-z0-9][a-z0-9-]{0,39}`.
    static func isValidClusterName(_ name: String) -> Bool {
        isWord(name, first: { isLowercaseOrDigit($0) }, rest: { isLowercaseOrDigit($0) || $0 == UInt8(ascii: "-") }, longest: 40)
    }

    private static func isWord(_ text: String, first: (UInt8) -> Bool, rest: (UInt8) -> Bool, longest: Int) -> Bool {
        let bytes = text.utf8
        guard let head = bytes.first, bytes.count <= longest, first(head) else { return false }
        return bytes.dropFirst().allSatisfy(rest)
    }

    private static func isLowercaseOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        isLowercaseOrDigit(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    public static func isValidUser(_ name: String) -> Bool {
        matches(name, #"[a-z_][a-z0-9_-]{0,31}"#)
    }

    static func isToken(_ value: String) -> Bool {
        matches(value, #"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"#)
    }

    /// `[0-9]+\.[0-9]+\.[0-9]+`, by bytes: `member.version` is in most inventories, and this
    /// one check was what loaded ICU's regex engine (3.5 MB resident) into every render.
    static func isVersion(_ value: String) -> Bool {
        let parts = value.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { part in
            !part.isEmpty && part.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        }
    }

    static func isDomainName(_ value: String) -> Bool {
        guard value.count <= 253 else { return false }
        return matches(value, #"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"#)
    }

    static func isSafeAbsolutePath(_ value: String) -> Bool {
        matches(value, #"(/[A-Za-z0-9._-]+)+"#) && !value.split(separator: "/").contains("..")
    }

    static func isHTTPURL(_ value: String) -> Bool {
        matches(value, #"https?://[A-Za-z0-9.\[\]:_-]+(/[A-Za-z0-9._~/%-]*)?"#)
    }

    /// inet_pton reads a C string: without the control check "10.0.0.1\0; reboot" would pass.
    public static func isIPAddress(_ value: String) -> Bool {
        !hasControlCharacter(value) && IPAddress.isLiteral(value)
    }
}
