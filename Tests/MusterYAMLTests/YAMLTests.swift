import Testing
@testable import MusterYAML

@Suite struct ParserTests {
    @Test func marksAreOneBased() throws {
        let node = try #require(try YAMLParser.parse("a: 1\nlist:\n  - x\n  - 'y'\n"))
        guard case .mapping(let pairs) = node.value else { Issue.record("not a mapping"); return }
        #expect(pairs.map { $0.key.scalarText } == ["a", "list"])
        #expect(pairs[1].key.mark == Mark(line: 2, column: 1))
        guard case .sequence(let items) = pairs[1].value.value else { Issue.record("not a list"); return }
        #expect(items[1].mark == Mark(line: 4, column: 5))
        #expect(items[1].value.isQuoted)
    }

    @Test func syntaxErrorCarriesLibyamlMark() {
        do {
            _ = try YAMLParser.parse("a: [1, 2\nb: 3\n")
            Issue.record("expected a syntax error")
        } catch let error as YAMLSyntaxError {
            #expect(error.mark.line == 2)
            #expect(error.message.contains("flow sequence"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func duplicateKeysAreKeptForTheCallerToReport() throws {
        let node = try #require(try YAMLParser.parse("a: 1\na: 2\n"))
        guard case .mapping(let pairs) = node.value else { Issue.record("not a mapping"); return }
        #expect(pairs.count == 2)
    }

    @Test func plainScalarsAreTypedQuotedOnesAreStrings() {
        #expect(ScalarType.infer("yes", style: .plain, tag: nil) == .bool(true))
        #expect(ScalarType.infer("yes", style: .quoted, tag: nil) == .string("yes"))
        #expect(ScalarType.infer("2379", style: .plain, tag: nil) == .int(2379))
        #expect(ScalarType.infer("~", style: .plain, tag: nil) == .null)
        #expect(ScalarType.infer("etcd1", style: .plain, tag: nil) == .string("etcd1"))
    }

    @Test func deepAliasNestingIsBounded() {
        var text = "a: &x [1]\n"
        for level in 0..<70 { text += "l\(level): &l\(level) [*\(level == 0 ? "x" : "l\(level - 1)")]\n" }
        #expect(throws: YAMLSyntaxError.self) { try YAMLParser.parse(text) }
    }
}

@Suite struct EmitterTests {
    @Test(arguments: ["yes", "no", "on", "true", "null", "~", "0755", "1:20", "2379", "", "1e3", "- x", "a: b", "#c", "'q'"])
    func ambiguousStringsAreQuotedAndReadBackAsStrings(_ text: String) throws {
        let emitted = YAMLEmitter.scalar(text)
        #expect(emitted.hasPrefix("'") || emitted.hasPrefix("\""), "\(text) emitted as \(emitted)")
        let node = try #require(try YAMLParser.parse("k: \(emitted)\n"))
        guard case .mapping(let pairs) = node.value, case .scalar(let back, let style) = pairs[0].value.value else {
            Issue.record("no scalar"); return
        }
        #expect(ScalarType.infer(back, style: style, tag: nil) == .string(text))
    }

    @Test(arguments: ["etcd1", "/var/lib/etcd/main", "http://10.0.0.1:2379,http://127.0.0.1:2379", "hi-etcd.com"])
    func ordinaryStringsStayPlain(_ text: String) {
        #expect(YAMLEmitter.scalar(text) == text)
    }
}

extension Node.Value {
    var isQuoted: Bool {
        if case .scalar(_, .quoted) = self { return true }
        return false
    }
}
