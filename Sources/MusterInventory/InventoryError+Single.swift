import Foundation
import MusterYAML

extension InventoryError {
    /// One problem found after loading (a member binary that is missing, say), shown like the
    /// loader's own: `FILE:LINE:COLUMN: error: ...` with the line and a caret.
    public static func at(_ mark: Mark, in file: String, _ message: String) -> InventoryError {
        let source = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        var shown: [Int: String] = [:]
        if lines.indices.contains(mark.line - 1) { shown[mark.line] = String(lines[mark.line - 1]) }
        // The message may carry text from outside the inventory (what `member.binary --version`
        // printed): shown with its control characters made visible, like every other diagnostic.
        return InventoryError(diagnostics: [Diagnostic(file: file, mark: mark, message: TerminalSafe.visible(message))],
                              sourceLines: shown)
    }
}

extension InventoryError {
    /// Problems found in another file muster reads (an Ansible inventory being imported), shown
    /// like the loader's own, with the lines of `source` they point at.
    public static func located(_ diagnostics: [Diagnostic], in source: Data) -> InventoryError {
        let sorted = diagnostics.sorted { ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column) }
        let kept = Array(sorted.prefix(DiagnosticSink.maximumKept)).map { diagnostic in
            Diagnostic(file: diagnostic.file, mark: diagnostic.mark, message: TerminalSafe.visible(diagnostic.message))
        }
        let lines = SourceLines.lines(numbered: Set(kept.map(\.mark.line)), in: source)
        return InventoryError(diagnostics: kept, sourceLines: lines, omitted: sorted.count - kept.count)
    }
}
