internal import CLibYAML

/// A YAML syntax error with libyaml's own words and a 1-based mark.
public struct YAMLSyntaxError: Error, Sendable, CustomStringConvertible {
    public var mark: Mark
    public var message: String
    public var description: String { "\(mark): error: \(message)" }
}

/// Parses YAML text with Debian's libyaml into `Node`s that carry their source marks.
public enum YAMLParser {
    /// Aliases share nodes; a cap on depth keeps a hostile alias graph from recursing forever.
    static let maximumDepth = 64

    /// Parses the first document of `text`; `nil` when the stream holds no document.
    public static func parse(_ text: String) throws -> Node? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(mark: Mark(line: 1, column: 1), message: "cannot initialize libyaml")
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer -> Node? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var document = yaml_document_t()
            guard yaml_parser_load(&parser, &document) == 1 else { throw syntaxError(parser) }
            defer { yaml_document_delete(&document) }
            guard let root = yaml_document_get_root_node(&document) else { return nil }
            return try convert(root, in: &document, depth: 0)
        }
    }

    private static func syntaxError(_ parser: yaml_parser_t) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            let start = parser.context_mark
            message = "\(problem) \(context) (started at \(start.line + 1):\(start.column + 1))"
        }
        // libyaml points at the problem itself; context_mark is where the construct began.
        let mark = parser.problem_mark
        return YAMLSyntaxError(mark: Mark(line: mark.line + 1, column: mark.column + 1), message: message)
    }

    private static func convert(
        _ node: UnsafeMutablePointer<yaml_node_t>, in document: inout yaml_document_t, depth: Int
    ) throws -> Node {
        let start = node.pointee.start_mark
        let mark = Mark(line: start.line + 1, column: start.column + 1)
        guard depth < maximumDepth else {
            throw YAMLSyntaxError(mark: mark, message: "nesting deeper than \(maximumDepth) levels")
        }
        let rawTag = node.pointee.tag.map { String(cString: $0) }
        switch node.pointee.type {
        case YAML_SCALAR_NODE:
            let scalar = node.pointee.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length),
                              as: UTF8.self)
            let style: Node.ScalarStyle
            switch scalar.style {
            case YAML_PLAIN_SCALAR_STYLE: style = .plain
            case YAML_LITERAL_SCALAR_STYLE, YAML_FOLDED_SCALAR_STYLE: style = .block
            default: style = .quoted
            }
            // libyaml fills in the default tag for untagged scalars: keep only explicit ones.
            let tag = rawTag == "tag:yaml.org,2002:str" && style == .plain ? nil : rawTag
            return Node(.scalar(text, style), mark: mark, tag: style == .plain ? tag : nil)
        case YAML_SEQUENCE_NODE:
            var items: [Node] = []
            var item = node.pointee.data.sequence.items.start
            while let current = item, current != node.pointee.data.sequence.items.top {
                if let child = yaml_document_get_node(&document, current.pointee) {
                    items.append(try convert(child, in: &document, depth: depth + 1))
                }
                item = current + 1
            }
            return Node(.sequence(items), mark: mark)
        case YAML_MAPPING_NODE:
            var pairs: [(key: Node, value: Node)] = []
            var pair = node.pointee.data.mapping.pairs.start
            while let current = pair, current != node.pointee.data.mapping.pairs.top {
                if let keyNode = yaml_document_get_node(&document, current.pointee.key),
                   let valueNode = yaml_document_get_node(&document, current.pointee.value) {
                    pairs.append((try convert(keyNode, in: &document, depth: depth + 1),
                                  try convert(valueNode, in: &document, depth: depth + 1)))
                }
                pair = current + 1
            }
            return Node(.mapping(pairs), mark: mark)
        default:
            return Node(.scalar("", .plain), mark: mark)
        }
    }
}
