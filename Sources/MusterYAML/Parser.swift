internal import CLibYAML
import Foundation

/// A YAML document muster refuses, with a 1-based mark: libyaml's own syntax errors, and the
/// documents that cross a `YAMLLimits` limit (then `limit` says which).
public struct YAMLSyntaxError: Error, Sendable, CustomStringConvertible {
    public var mark: Mark
    public var message: String
    /// The limit that refused the document; `nil` for a syntax error.
    public var limit: YAMLLimits.Kind?

    public init(mark: Mark, limit: YAMLLimits.Kind? = nil, message: String) {
        self.mark = mark
        self.limit = limit
        self.message = message
    }

    public var description: String { "\(mark): error: \(message)" }
}

/// Parses YAML with Debian's libyaml into `Node`s that carry their source marks.
///
/// This reads libyaml's events (`yaml_parser_parse`), not its document API
/// (`yaml_parser_load`). The document API hands over a finished graph in which an alias is
/// only a second reference to the anchored node: the alias's own position is gone, so a budget
/// could only point at the anchor, and the whole document (however deep) sits in libyaml's
/// memory before the first check. With events every alias arrives with its own mark, and a
/// limit stops libyaml the moment it is crossed (65 levels into a megabyte of `[`, say).
public enum YAMLParser {
    /// Parses the first document of `text`; `nil` when the stream holds no document.
    public static func parse(_ text: String, limits: YAMLLimits = .standard) throws -> Node? {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0), limits: limits) }
    }

    /// Parses the first document of UTF-8 `bytes` (anything else is refused with a mark).
    public static func parse(_ data: Data, limits: YAMLLimits = .standard) throws -> Node? {
        try data.withUnsafeBytes { try parse($0, limits: limits) }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, limits: YAMLLimits) throws -> Node? {
        guard bytes.count <= limits.documentBytes else {
            throw YAMLSyntaxError(mark: SourceLines.mark(ofOffset: limits.documentBytes, in: bytes),
                                  limit: .documentBytes,
                                  message: "the document is larger than \(limits.documentBytes) bytes; muster reads no further than here")
        }
        // An empty stream holds no document (and libyaml would want a pointer to no bytes).
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count > 0 else {
            return nil
        }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(mark: Mark(line: 1, column: 1), message: "cannot initialize libyaml")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, base, bytes.count)
        // Without this libyaml also takes UTF-16 (by its byte order mark), whose lines and
        // columns we could not show.
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        var builder = TreeBuilder(limits: limits)
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else { throw syntaxError(parser, bytes) }
            defer { yaml_event_delete(&event) }
            let mark = Mark(line: event.start_mark.line + 1, column: event.start_mark.column + 1)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return builder.root
            case YAML_DOCUMENT_END_EVENT:
                // Only the first document counts; what follows is not read at all.
                return builder.root
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length),
                                  as: UTF8.self)
                let style = Self.style(scalar.style)
                // Only plain scalars are typed by tag; a non-specific tag ("!") is no tag.
                let tag = string(scalar.tag).flatMap { $0 == "!" || style != .plain ? nil : $0 }
                try builder.scalar(text, style: style, tag: tag, anchor: string(scalar.anchor), mark: mark)
            case YAML_ALIAS_EVENT:
                try builder.alias(string(event.data.alias.anchor) ?? "", mark: mark)
            case YAML_SEQUENCE_START_EVENT:
                try builder.startSequence(anchor: string(event.data.sequence_start.anchor), mark: mark)
            case YAML_MAPPING_START_EVENT:
                try builder.startMapping(anchor: string(event.data.mapping_start.anchor), mark: mark)
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                builder.endCollection()
            default:
                break
            }
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    private static func style(_ style: yaml_scalar_style_t) -> Node.ScalarStyle {
        switch style {
        case YAML_PLAIN_SCALAR_STYLE: return .plain
        case YAML_LITERAL_SCALAR_STYLE, YAML_FOLDED_SCALAR_STYLE: return .block
        default: return .quoted
        }
    }

    /// Where the UTF-8 sequence holding the byte at `offset` starts.
    private static func leadingByte(before offset: Int, in bytes: UnsafeRawBufferPointer) -> Int {
        var start = min(offset, bytes.count - 1)
        repeat { start -= 1 } while start > 0 && bytes[start] & 0xC0 == 0x80
        return max(0, start)
    }

    private static func syntaxError(_ parser: yaml_parser_t, _ bytes: UnsafeRawBufferPointer) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        // The reader (bad UTF-8, a control character) reports only a byte offset, no mark.
        if parser.error == YAML_READER_ERROR {
            var offset = parser.problem_offset
            var value = parser.problem_value == -1 ? "" : String(format: " (0x%02X)", parser.problem_value)
            // For a sequence cut short (Latin-1 "café\n") libyaml names the byte after it (the
            // newline): point at the character that went wrong instead.
            if problem == "invalid trailing UTF-8 octet" {
                offset = leadingByte(before: offset, in: bytes)
                value = " after 0x" + String(bytes[offset], radix: 16, uppercase: true)
            }
            return YAMLSyntaxError(mark: SourceLines.mark(ofOffset: offset, in: bytes), message: problem + value)
        }
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            let start = parser.context_mark
            message = "\(problem) \(context) (started at \(start.line + 1):\(start.column + 1))"
        }
        // libyaml points at the problem itself; context_mark is where the construct began.
        let mark = parser.problem_mark
        return YAMLSyntaxError(mark: Mark(line: mark.line + 1, column: mark.column + 1), message: message)
    }
}
