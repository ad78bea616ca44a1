import MusterYAML

/// One problem found in an inventory, located in its file.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var mark: Mark
    public var message: String

    public init(file: String, mark: Mark, message: String) {
        self.file = file
        self.mark = mark
        self.message = message
    }

    public var description: String { "\(file):\(mark.line):\(mark.column): error: \(message)" }
}

/// Every problem of an inventory at once, so the user fixes them in one pass.
public struct InventoryError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    /// The source, to show the offending line under each message.
    public var sourceLines: [Substring]

    public var description: String {
        diagnostics.map { diagnostic in
            var text = diagnostic.description
            let index = diagnostic.mark.line - 1
            if sourceLines.indices.contains(index) {
                let line = sourceLines[index]
                text += "\n" + line + "\n"
                    + String(repeating: " ", count: max(0, diagnostic.mark.column - 1)) + "^"
            }
            return text
        }.joined(separator: "\n")
    }
}

/// Collects diagnostics while an inventory is read and checked.
final class DiagnosticSink {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    func error(_ mark: Mark, _ message: String) {
        diagnostics.append(Diagnostic(file: file, mark: mark, message: message))
    }
}
