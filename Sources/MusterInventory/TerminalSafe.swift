/// Inventory text on its way to a terminal. A value or source line may hold control characters
/// (a double-quoted "\e[2J", or the very byte libyaml refused); printed raw they would move the
/// cursor, recolour or clear the terminal, or split one error over lines.
enum TerminalSafe {
    /// Each control character as one visible character: C0 controls and DEL as their Unicode
    /// control pictures (LF as "␊", ESC as "␛"), C1 controls as "�". One for one, so a caret
    /// under a source line still points at the right column.
    static func visible(_ text: some StringProtocol) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x00...0x1F: result.append(Unicode.Scalar(0x2400 + scalar.value)!)
            case 0x7F: result.append("\u{2421}")
            case 0x80...0x9F: result.append("\u{FFFD}")
            default: result.append(scalar)
            }
        }
        return String(result)
    }
}
