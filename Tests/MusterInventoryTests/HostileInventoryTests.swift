import Foundation
import Testing
import MusterYAML
@testable import MusterInventory

/// Bytes no inventory should hold, and documents built to hurt the controller: each must come
/// back as an ordinary diagnostic with a position, printed safely.
@Suite struct HostileInventoryTests {
    private let tail = "clusters:\n  main: { members: [a], tls: false }\n"

    @Test func invalidUTF8IsRefusedWhereItIs() {
        var bytes = Data("hosts:\n  a: { address: 10.0.0.1, fqdn: ".utf8)
        bytes.append(0xFF)
        bytes.append(contentsOf: Data(" }\n".utf8) + Data(tail.utf8))
        expectDiagnostic(diagnostics(of: bytes), line: 2, column: 33, containing: "invalid leading UTF-8 octet (0xFF)")
    }

    @Test func aNULByteIsRefusedWhereItIs() {
        var bytes = Data("hosts:\n  a".utf8)
        bytes.append(0)
        bytes.append(contentsOf: Data(": { address: 10.0.0.1 }\n".utf8) + Data(tail.utf8))
        expectDiagnostic(diagnostics(of: bytes), line: 2, column: 4, containing: "control characters are not allowed (0x00)")
    }

    @Test func aRawEscapeIsRefusedAndNeverPrinted() throws {
        let text = "hosts:\n  a: { address: 10.0.0.1 } # \u{1B}[2J\n" + tail
        let error = try #require(inventoryError(of: Data(text.utf8)))
        expectDiagnostic(error.diagnostics, line: 2, column: 30, containing: "control characters are not allowed (0x1B)")
        #expect(!error.description.contains("\u{1B}"))
        #expect(error.description.contains("# \u{241B}[2J\n"))
    }

    @Test func anEscapedEscapeIsRefusedAndShownAsAPicture() throws {
        let text = "hosts:\n  a: { address: 10.0.0.1, fqdn: \"\\e]0;pwned\\a\" }\n" + tail
        let error = try #require(inventoryError(of: Data(text.utf8)))
        expectDiagnostic(error.diagnostics, line: 2, column: 33, containing: "control character U+001B")
        #expect(!error.description.unicodeScalars.contains { $0.properties.generalCategory == .control && $0 != "\n" })
    }

    @Test func utf16IsRefusedAtTheStart() {
        var bytes = Data([0xFF, 0xFE])
        for unit in "hosts: {}\n".utf16 { bytes.append(contentsOf: [UInt8(unit & 0xFF), UInt8(unit >> 8)]) }
        expectDiagnostic(diagnostics(of: bytes), line: 1, column: 1, containing: "UTF-8")
    }

    @Test func crlfLinesShowTheRightSourceLine() throws {
        let text = "hosts:\r\n  a: { address: nope }\r\n" + tail.replacingOccurrences(of: "\n", with: "\r\n")
        let error = try #require(inventoryError(of: Data(text.utf8)))
        expectDiagnostic(error.diagnostics, line: 2, column: 17, containing: "address 'nope'")
        #expect(error.description.hasSuffix("\n  a: { address: nope }\n                ^"))
    }

    @Test func aLongLineIsShownAsAWindowWithTheCaretOnTheProblem() throws {
        let filler = String(repeating: "x", count: 10_000)
        // A free-text value (the identity file), so the only error is at the far end of the line.
        let text = "hosts: { a: { address: 10.0.0.1, ssh: { identity: /\(filler) } }, b: { address: bad } }\n" + tail
        let error = try #require(inventoryError(of: Data(text.utf8)))
        let column = 10_000 + 72
        expectDiagnostic(error.diagnostics, line: 1, column: column, containing: "address 'bad'")
        let printed = error.description.split(separator: "\n", omittingEmptySubsequences: false)
        let excerpt = try #require(printed.dropFirst().first)
        let caret = try #require(printed.dropFirst(2).first)
        #expect(excerpt.count <= SourceExcerpt.width + 2)
        #expect(caret.count <= SourceExcerpt.width + 2)
        // The caret points at the first letter of "bad" in the window shown.
        let index = excerpt.index(excerpt.startIndex, offsetBy: caret.count - 1)
        #expect(excerpt[index...].hasPrefix("bad }"))
    }

    @Test func aDocumentOverTheSizeLimitIsRefusedBeforeParsing() {
        var limits = YAMLLimits()
        limits.documentBytes = 64
        let text = "hosts:\n  a: { address: 10.0.0.1 }\n" + tail + "# padding\n"
        do {
            _ = try InventoryLoader.parse(text, file: "inv.yml", limits: limits)
            Issue.record("a document over the limit loaded")
        } catch let error as InventoryError {
            // Byte 64 (0-based) is line 4 (from byte 44), column 21.
            #expect(error.diagnostics.map(\.mark) == [Mark(line: 4, column: 21)])
            #expect(error.diagnostics.first?.message.contains("larger than 64 bytes") == true)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func aFileOverTheSizeLimitIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-hostile-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("huge.yml").path
        let line = Data((String(repeating: "#", count: 1023) + "\n").utf8)
        var data = Data(capacity: 3 << 20)
        for _ in 0..<(3 << 10) { data.append(line) }
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try InventoryLoader.load(path: path)
            Issue.record("a 3 MiB file loaded")
        } catch let error as InventoryError {
            // Byte 2 MiB starts line 2049.
            #expect(error.diagnostics.map(\.mark) == [Mark(line: 2049, column: 1)])
            #expect(error.description.hasPrefix("\(path):2049:1: error: the document is larger than 2097152 bytes"))
        }
    }

    @Test func aMissingFileOrADirectoryCannotBeRead() {
        for path in ["/nonexistent/inventory.yml", NSTemporaryDirectory()] {
            do {
                _ = try InventoryLoader.load(path: path)
                Issue.record("\(path) loaded")
            } catch let error as InventoryError {
                #expect(error.description == "\(path):1:1: error: cannot read the inventory file")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test func anAliasBombIsRefusedAtTheAlias() throws {
        var text = "hosts:\n  a: { address: 10.0.0.1 }\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for level in 1...9 {
            text += "x\(level): &x\(level) [" + Array(repeating: "*x\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        text += tail
        let error = try #require(inventoryError(of: Data(text.utf8)))
        let diagnostic = try #require(error.diagnostics.first)
        #expect(error.diagnostics.count == 1)
        #expect(diagnostic.message.contains("grows past 200000 nodes"))
        // x5 (line 8) repeats x4's 111,111 nodes: its first alias crosses 200,000.
        #expect(diagnostic.mark == Mark(line: 8, column: 10))
        #expect(error.description.hasPrefix("inv.yml:8:10: error: "))
        #expect(error.description.hasSuffix("^"))
    }

    @Test func manyErrorsPrintAHundredAndACount() throws {
        var text = "hosts:\n"
        for index in 0..<150 { text += "  h\(index): { fqdn: x }\n" }
        text += "clusters: {}\n"
        let error = try #require(inventoryError(of: Data(text.utf8)))
        #expect(error.diagnostics.count == DiagnosticSink.maximumKept)
        #expect(error.omitted == 50)
        #expect(error.description.hasSuffix("\n50 more errors not shown"))
    }

    @Test func longKeysGetNoHintAndCostNoQuadraticWork() {
        let key = String(repeating: "k", count: 16_000)
        // An implicit key may not be longer than 1024 characters: this one is explicit.
        let text = "hosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main:\n    members: [a]\n    tls: false\n    etcd:\n      ? \(key)\n      : 1\n"
        let found = diagnostics(of: text)
        expectDiagnostic(found, line: 8, column: 9, containing: "is not an etcd configuration key")
        #expect(found.allSatisfy { !$0.message.contains("did you mean") })
    }
}
