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
