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

/// Every problem of an inventory at once (up to `DiagnosticSink.maximumKept`), so the user
/// fixes them in one pass.
public struct InventoryError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    /// The source lines the diagnostics point at, by 1-based number, to show under each message.
    public var sourceLines: [Int: String]
    /// Problems found beyond `diagnostics`, counted but not kept.
    public var omitted = 0

    public var description: String {
        var blocks = diagnostics.map { diagnostic in
            var text = diagnostic.description
            if let line = sourceLines[diagnostic.mark.line] {
                let excerpt = SourceExcerpt(line: line, column: diagnostic.mark.column)
                text += "\n" + excerpt.text + "\n" + String(repeating: " ", count: excerpt.caretOffset) + "^"
            }
            return text
        }
        if omitted > 0 { blocks.append("\(omitted) more errors not shown") }
        return blocks.joined(separator: "\n")
    }
}

/// Collects diagnostics while an inventory is read and checked.
final class DiagnosticSink {
    /// A thousand identical errors help nobody, and a hostile file could make millions (one
    /// per item of a long list): keep the first hundred, count the rest.
    static let maximumKept = 100

    let file: String
    private(set) var diagnostics: [Diagnostic] = []
    private(set) var omitted = 0

    init(file: String) { self.file = file }

    var isEmpty: Bool { diagnostics.isEmpty }

    func error(_ mark: Mark, _ message: String) {
        guard diagnostics.count < Self.maximumKept else {
            omitted += 1
            return
        }
        diagnostics.append(Diagnostic(file: file, mark: mark, message: TerminalSafe.visible(message)))
    }
}
