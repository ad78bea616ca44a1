import Foundation
import Testing
@testable import MusterInventory

/// One broken inventory and the diagnostic it must produce: the rule it breaks, where, and a
/// fragment of the message.
struct RuleCase: CustomTestStringConvertible, Sendable {
    var rule: String
    var text: String
    var line: Int
    var column: Int
    var fragment: String

    init(_ rule: String, _ text: String, at line: Int, _ column: Int, _ fragment: String) {
        self.rule = rule
        self.text = text
        self.line = line
        self.column = column
        self.fragment = fragment
    }

    var testDescription: String { rule }
}

/// The diagnostics for `text`, or an issue when it loads cleanly.
func diagnostics(of text: String, file: String = "inv.yml",
                 sourceLocation: SourceLocation = #_sourceLocation) -> [Diagnostic] {
    diagnostics(of: Data(text.utf8), file: file, sourceLocation: sourceLocation)
}

func diagnostics(of data: Data, file: String = "inv.yml",
                 sourceLocation: SourceLocation = #_sourceLocation) -> [Diagnostic] {
    inventoryError(of: data, file: file, sourceLocation: sourceLocation)?.diagnostics ?? []
}

func inventoryError(of data: Data, file: String = "inv.yml",
                    sourceLocation: SourceLocation = #_sourceLocation) -> InventoryError? {
    do {
        _ = try InventoryLoader.parse(data, file: file)
        Issue.record("expected errors, the inventory loaded", sourceLocation: sourceLocation)
        return nil
    } catch let error as InventoryError {
        return error
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Records an issue unless `found` holds `fragment` at exactly `line`:`column`.
func expectDiagnostic(_ found: [Diagnostic], line: Int, column: Int, containing fragment: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(found.contains { $0.mark == .init(line: line, column: column) && $0.message.contains(fragment) },
            "no '\(fragment)' at \(line):\(column) in \(found.map(\.description))", sourceLocation: sourceLocation)
}
