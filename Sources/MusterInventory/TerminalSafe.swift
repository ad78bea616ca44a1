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

/// The part of a source line printed under a message, and where its caret goes. A line longer
/// than `width` characters is cut to a window around the column, "…" marking each cut: a
/// one-line document of megabytes would otherwise print whole under every error.
struct SourceExcerpt {
    static let width = 160
    let text: String
    /// Characters before the caret.
    let caretOffset: Int

    /// `column` is 1-based and counts characters (code points), as libyaml's marks do.
    init(line: some StringProtocol, column: Int) {
        let scalars = Array(TerminalSafe.visible(line).unicodeScalars)
        let wanted = max(0, column - 1)
        guard scalars.count > Self.width else {
            text = String(String.UnicodeScalarView(scalars))
            caretOffset = wanted
            return
        }
        let start = max(0, min(wanted - Self.width / 2, scalars.count - Self.width))
        let end = start + Self.width
        var shown = String(String.UnicodeScalarView(scalars[start..<end]))
        var offset = wanted - start
        if start > 0 { shown = "…" + shown; offset += 1 }
        if end < scalars.count { shown += "…" }
        text = shown
        caretOffset = offset
    }
}
