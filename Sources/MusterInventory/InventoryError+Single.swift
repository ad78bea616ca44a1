import Foundation
import MusterYAML

extension InventoryError {
    /// One problem found after loading (a member binary that is missing, say), shown like the
    /// loader's own: `FILE:LINE:COLUMN: error: ...` with the line and a caret.
    public static func at(_ mark: Mark, in file: String, _ message: String) -> InventoryError {
        let source = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return InventoryError(diagnostics: [Diagnostic(file: file, mark: mark, message: message)],
                              sourceLines: source.split(separator: "\n", omittingEmptySubsequences: false))
    }
}
