import Foundation

/// Text from elsewhere (a remote command's stderr, etcd's error text, a member's log, a path the
/// operator typed) on its way to a terminal: control characters other than newline and tab are
/// shown as `\xNN`, so that no host or file can move the cursor, retitle the window or hide a line.
public enum TerminalText {
    public static func escaped(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.flatMap { scalar -> [Unicode.Scalar] in
            if scalar == "\n" || scalar == "\t" || !(scalar.value < 0x20 || scalar.value == 0x7f || (0x80...0x9f).contains(scalar.value)) {
                return [scalar]
            }
            return Array(String(format: "\\x%02x", scalar.value).unicodeScalars)
        }))
    }
}
