import Foundation
import Testing
@testable import MusterYAML

/// The refusal `text` gets, or an issue when it parses.
private func refusal(_ text: String, limits: YAMLLimits = .standard,
                     sourceLocation: SourceLocation = #_sourceLocation) -> YAMLSyntaxError? {
    do {
        _ = try YAMLParser.parse(text, limits: limits)
        Issue.record("expected a refusal, the document parsed", sourceLocation: sourceLocation)
    } catch let error as YAMLSyntaxError {
        return error
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// `levels` anchors, each a list of `width` aliases of the one before; level 0 is `width` scalars.
private func laughs(levels: Int, width: Int) -> String {
    var text = "l0: &l0 [" + Array(repeating: "lol", count: width).joined(separator: ", ") + "]\n"
    for level in 1..<levels {
        text += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: width).joined(separator: ", ") + "]\n"
    }
    return text
}

@Suite struct AliasBudgetTests {
    @Test func theClassicBillionLaughsIsRefusedAtTheAliasThatCrossesTheBudget() throws {
        // l0 holds 11 nodes, l4 111,111: with the 123,463 nodes before it, l5's first alias
        // (line 6, column 10) crosses 200,000.
        let error = try #require(refusal(laughs(levels: 10, width: 10)))
        #expect(error.limit == .nodes)
        #expect(error.mark == Mark(line: 6, column: 10))
    }

    @Test func aWideSequenceRepeatedByManyAliasesIsRefused() throws {
        // One anchored list of 10,000 items and 200 aliases of it: only two levels deep.
        var text = "big: &big [" + Array(repeating: "x", count: 10_000).joined(separator: ",") + "]\n"
        text += "uses: [" + Array(repeating: "*big", count: 200).joined(separator: ", ") + "]\n"
        let error = try #require(refusal(text))
        #expect(error.limit == .nodes)
        #expect(error.mark.line == 2)
    }

    @Test func aliasesAsMappingKeysAreCharged() throws {
        var text = "k: &k [" + Array(repeating: "x", count: 10_000).joined(separator: ",") + "]\n"
        text += "m:\n" + (0..<200).map { "  ? *k\n  : \($0)\n" }.joined()
        let error = try #require(refusal(text))
        #expect(error.limit == .nodes)
        #expect(error.message.contains("an alias counts as all the nodes it repeats"))
    }

    @Test func mergeKeysAreChargedLikeAnyAlias() throws {
        // libyaml does not merge `<<`: it is a key like any other, its alias charged in full.
        var text = "base: &base {" + (0..<5_000).map { "k\($0): v" }.joined(separator: ", ") + "}\n"
        text += (0..<200).map { "h\($0): { <<: *base }\n" }.joined()
        let error = try #require(refusal(text))
        #expect(error.limit == .nodes)
    }

    @Test func aLongChainOfAliasesIsRefusedAtTheAliasTooDeep() throws {
        var text = "a0: &a0 x\n"
        for level in 1...12 { text += "a\(level): &a\(level) [*a\(level - 1)]\n" }
        let error = try #require(refusal(text))
        #expect(error.limit == .aliasDepth)
        // a8 holds the eighth alias within aliases; a9's alias would be the ninth.
        #expect(error.mark == Mark(line: 10, column: 10))
    }

    @Test func everyAliasIsChargedSoTheBudgetIsExact() throws {
        // 1 mapping + 2 keys + 1 anchored list of 3 = 7; the alias repeats 4 of them: 11.
        let text = "a: &a [x, y, z]\nb: *a\n"
        var limits = YAMLLimits()
        limits.nodes = 11
        _ = try YAMLParser.parse(text, limits: limits)
        limits.nodes = 10
        let error = try #require(refusal(text, limits: limits))
        #expect(error.limit == .nodes)
        #expect(error.mark == Mark(line: 2, column: 4))
    }

    @Test func anAliasReadsAsItsAnchorWithTheAliasMark() throws {
        let node = try #require(try YAMLParser.parse("a: &a { port: 22 }\nb: *a\n"))
        guard case .mapping(let pairs) = node.value, case .mapping(let copied) = pairs[1].value.value else {
            Issue.record("no mapping"); return
        }
        #expect(copied.first?.key.scalarText == "port")
        #expect(pairs[1].value.mark == Mark(line: 2, column: 4))
    }

    @Test func aRedefinedAnchorServesTheAliasesAfterIt() throws {
        let node = try #require(try YAMLParser.parse("a: &x one\nb: *x\nc: &x two\nd: *x\n"))
        guard case .mapping(let pairs) = node.value else { Issue.record("no mapping"); return }
        #expect(pairs.map { $0.value.scalarText } == ["one", "one", "two", "two"])
    }

    @Test func anUndefinedOrSelfReferringAliasIsASyntaxError() throws {
        let undefined = try #require(refusal("a: *nope\n"))
        #expect(undefined.limit == nil)
        #expect(undefined.mark == Mark(line: 1, column: 4))
        #expect(undefined.message == "found undefined alias 'nope'")
        // An anchor is defined once its node ends, so a node cannot contain itself.
        let recursive = try #require(refusal("a: &a [*a]\n"))
        #expect(recursive.message == "found undefined alias 'a'")
    }
}

@Suite struct SizeAndDepthLimitTests {
    @Test func deepFlowNestingStopsAtTheFirstLevelTooDeep() throws {
        // A megabyte of "[": refused at level 65, without libyaml ever reading the rest.
        let text = String(repeating: "[", count: 1 << 20)
        let error = try #require(refusal(text))
        #expect(error.limit == .depth)
        #expect(error.mark == Mark(line: 1, column: 65))
    }

    @Test func deepBlockNestingIsRefused() throws {
        let text = (0..<70).map { String(repeating: "  ", count: $0) + "k\($0):\n" }.joined()
        let error = try #require(refusal(text))
        #expect(error.limit == .depth)
    }

    @Test func sixtyFourLevelsAreFine() throws {
        let text = String(repeating: "[", count: 63) + "x" + String(repeating: "]", count: 63)
        _ = try YAMLParser.parse(text)
    }

    @Test func aliasesCannotNestPastTheDepthLimit() throws {
        // 40 levels anchored, repeated 30 levels down: each fine alone, 70 together.
        let deep = String(repeating: "[", count: 40) + "x" + String(repeating: "]", count: 40)
        let text = "a: &deep \(deep)\nb: " + String(repeating: "[", count: 30) + "*deep" + String(repeating: "]", count: 30) + "\n"
        let error = try #require(refusal(text))
        #expect(error.limit == .depth)
        #expect(error.mark == Mark(line: 2, column: 34))
    }

    @Test func aLongScalarIsRefusedAtItsStart() throws {
        let text = "a: ok\nb: " + String(repeating: "x", count: YAMLLimits.standard.scalarBytes + 1) + "\n"
        let error = try #require(refusal(text))
        #expect(error.limit == .scalarBytes)
        #expect(error.mark == Mark(line: 2, column: 4))
        _ = try YAMLParser.parse("b: " + String(repeating: "x", count: YAMLLimits.standard.scalarBytes) + "\n")
    }

    @Test func aDocumentOverTheSizeLimitIsRefusedBeforeLibyaml() throws {
        var limits = YAMLLimits()
        limits.documentBytes = 10
        // Not even valid YAML: libyaml never sees it.
        let error = try #require(refusal("a: [\n\n\n\n\n\n\n\n\n\n\n", limits: limits))
        #expect(error.limit == .documentBytes)
        #expect(error.mark == Mark(line: 7, column: 1))
    }

    @Test func readerErrorsGetTheirPositionFromTheByteOffset() throws {
        do {
            _ = try YAMLParser.parse(Data("a: b\nc: é\u{1}".utf8))
            Issue.record("a control character parsed")
        } catch let error as YAMLSyntaxError {
            #expect(error.mark == Mark(line: 2, column: 5))
            #expect(error.message == "control characters are not allowed (0x01)")
        }
    }

    @Test func anEmptyStreamHasNoDocument() throws {
        #expect(try YAMLParser.parse("") == nil)
        #expect(try YAMLParser.parse("# only a comment\n") == nil)
    }

    @Test func onlyTheFirstDocumentIsRead() throws {
        let node = try #require(try YAMLParser.parse("a: 1\n---\nb: [\n"))
        guard case .mapping(let pairs) = node.value else { Issue.record("no mapping"); return }
        #expect(pairs.map { $0.key.scalarText } == ["a"])
    }
}

@Suite struct SourceLinesTests {
    @Test func linesEndWhereLibyamlEndsThem() {
        let text = "a\nb\r\nc\rd\u{85}e\u{2028}f\u{2029}g"
        let lines = SourceLines.lines(numbered: Set(1...8), in: Array(text.utf8))
        #expect(lines == [1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f", 7: "g"])
        #expect(SourceLines.lines(numbered: [2, 7], in: Array(text.utf8)) == [2: "b", 7: "g"])
    }

    @Test func columnsCountCharactersNotBytes() {
        let bytes = Array("é€x\r\nab".utf8)
        #expect(SourceLines.mark(ofOffset: 5, in: bytes) == Mark(line: 1, column: 3))
        #expect(SourceLines.mark(ofOffset: 8, in: bytes) == Mark(line: 2, column: 1))
        #expect(SourceLines.mark(ofOffset: 9, in: bytes) == Mark(line: 2, column: 2))
    }
}
