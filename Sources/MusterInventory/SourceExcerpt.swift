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
