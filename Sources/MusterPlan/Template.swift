import MusterBasics
import MusterYAML

/// A value a template reads by name: text, a flag for a section, or a list whose items a
/// section renders one after the other.
public enum TemplateValue: Sendable, Equatable {
    case text(String)
    case flag(Bool)
    case list([TemplateContext])
}

/// The names a template sees at one level; an inner section's item sees its own names first,
/// then the ones around it.
public typealias TemplateContext = [String: TemplateValue]

/// How `{{name}}` escapes its value, chosen by a template's `{{% CONTENT_TYPE: NAME}}` pragma
/// from where it stands to the end of its section (HTML before any pragma, as in Mustache).
/// `{{{name}}}` and `{{&name}}` never escape.
public enum TemplateContentType: String, Sendable, CaseIterable {
    case html = "HTML"
    case text = "TEXT"
    /// A YAML scalar that reads back as the same string (`YAMLEmitter.scalar`).
    case yaml = "YAML"
    /// A word a POSIX shell reads back byte for byte (`Shell.quote`).
    case shell = "SHELL"

    func escape(_ text: String) -> String {
        switch self {
        case .text: return text
        case .yaml: return YAMLEmitter.scalar(text)
        case .shell: return Shell.quote(text)
        case .html:
            guard text.utf8.contains(where: { "<>&\"'".utf8.contains($0) }) else { return text }
            var escaped = ""
            escaped.reserveCapacity(text.utf8.count + 16)
            for character in text.unicodeScalars {
                switch character {
                case "<": escaped += "&lt;"
                case ">": escaped += "&gt;"
                case "&": escaped += "&amp;"
                case "\"": escaped += "&quot;"
                case "'": escaped += "&#39;"
                default: escaped.unicodeScalars.append(character)
                }
            }
            return escaped
        }
    }
}

/// The Mustache subset muster's templates are written in, compiled once and rendered from
/// typed values: text, `{{name}}` (escaped by the content type), `{{{name}}}` and `{{&name}}`
/// (as is), sections `{{#name}}...{{/name}}` (a list repeats, a flag shows or hides, text
/// renders once), inverted sections `{{^name}}...{{/name}}`, comments `{{! ... }}` and the
/// `{{% CONTENT_TYPE: NAME}}` pragma. A tag alone on its line (a section's, a comment, a pragma)
/// takes the line with it, as Mustache's standalone rule says. A name is looked up from the
/// innermost section's item outwards; a name nothing holds renders as nothing and opens no
/// section, `{{.}}` is the current item. Everything else (partials, inheritance, set delimiters,
/// dotted names, filters, unknown pragmas) is refused at compile time at its FILE:LINE:COLUMN.
public struct Template: Sendable {
    indirect enum Node: Sendable {
        case text(String)
        case variable(String, escaped: Bool)
        case section(String, inverted: Bool, [Node])
        case contentType(TemplateContentType)
    }

    /// What a template file cannot hold, at its place.
    public struct CompileError: Error, CustomStringConvertible, Equatable {
        public var file: String
        public var line: Int
        public var column: Int
        public var problem: String
        public var description: String { "\(file):\(line):\(column): \(problem)" }
    }

    let nodes: [Node]
    /// Bytes of text in the template, a guess at the size of what it renders.
    let textSize: Int

    /// Compiles `source`; `file` names it in errors (`templates/conf.yml.mustache`).
    public init(_ source: String, file: String) throws(CompileError) {
        var compiler = Compiler(bytes: Array(source.utf8), file: file)
        nodes = try compiler.compile()
        textSize = source.utf8.count
    }

    /// The text of the template for `context`.
    public func render(_ context: TemplateContext) -> String {
        var output = ""
        output.reserveCapacity(textSize + textSize / 2)
        var scope = Scope(frames: [.names(context)])
        Self.render(nodes, into: &output, scope: &scope, contentType: .html)
        return output
    }

    /// The stack of section items, innermost last.
    struct Scope {
        enum Frame { case names(TemplateContext), value(TemplateValue) }
        var frames: [Frame]

        func lookup(_ name: String) -> TemplateValue? {
            if name == "." {
                switch frames.last! {
                case .value(let value): return value
                case .names(let names): return .list([names])  // renders as nothing, opens once
                }
            }
            for frame in frames.reversed() {
                if case .names(let names) = frame, let value = names[name] { return value }
            }
            return nil
        }
    }

    private static func render(_ nodes: [Node], into output: inout String, scope: inout Scope, contentType: TemplateContentType) {
        var contentType = contentType
        for node in nodes {
            switch node {
            case .text(let text):
                output += text
            case .variable(let name, let escaped):
                switch scope.lookup(name) {
                case .text(let text)?: output += escaped ? contentType.escape(text) : text
                case .flag(let flag)?: output += escaped ? contentType.escape(flag ? "true" : "false") : (flag ? "true" : "false")
                case .list?, nil: break
                }
            case .section(let name, let inverted, let body):
                let value = scope.lookup(name)
                if inverted {
                    switch value {
                    case nil, .flag(false)?: render(body, into: &output, scope: &scope, contentType: contentType)
                    case .list(let items)? where items.isEmpty: render(body, into: &output, scope: &scope, contentType: contentType)
                    default: break
                    }
                    continue
                }
                switch value {
                case nil, .flag(false)?: break
                case .flag(true)?: render(body, into: &output, scope: &scope, contentType: contentType)
                case .text?:
                    scope.frames.append(.value(value!))
                    render(body, into: &output, scope: &scope, contentType: contentType)
                    scope.frames.removeLast()
                case .list(let items)?:
                    for item in items {
                        scope.frames.append(.names(item))
                        render(body, into: &output, scope: &scope, contentType: contentType)
                        scope.frames.removeLast()
                    }
                }
            case .contentType(let type):
                contentType = type
            }
        }
    }
}

/// Template text to nodes, byte by byte, with Mustache's standalone-line rule.
private struct Compiler {
    let bytes: [UInt8]
    let file: String
    var position = 0

    private static let open = Array("{{".utf8), close = Array("}}".utf8)

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    private struct OpenSection {
        var name: String
        var inverted: Bool
        var offset: Int
        var nodes: [Template.Node] = []
    }

    mutating func compile() throws(Template.CompileError) -> [Template.Node] {
        var stack = [OpenSection(name: "", inverted: false, offset: 0)]
        var text: [UInt8] = []
        func flushText() {
            if !text.isEmpty {
                stack[stack.count - 1].nodes.append(.text(String(decoding: text, as: UTF8.self)))
                text.removeAll(keepingCapacity: true)
            }
        }
        while position < bytes.count {
            guard matches(Self.open, at: position) else {
                text.append(bytes[position])
                position += 1
                continue
            }
            let tagStart = position
            let tag = try readTag()
            // A standalone tag: only blanks before it on its line and only blanks and the line's
            // end after it. The blanks and the line break go with it.
            let lineStart = startOfLine(before: tagStart)
            let standalone = tag.mayStandAlone
                && bytes[lineStart..<tagStart].allSatisfy(isBlank)
                && endOfLineAfterBlanks(from: position) != nil
            if standalone {
                text.removeLast(tagStart - lineStart)
                position = endOfLineAfterBlanks(from: position)!
            }
            flushText()
            switch tag.kind {
            case .variable(let name, let escaped):
                stack[stack.count - 1].nodes.append(.variable(name, escaped: escaped))
            case .sectionStart(let name, let inverted):
                stack.append(OpenSection(name: name, inverted: inverted, offset: tagStart))
            case .sectionEnd(let name):
                guard stack.count > 1 else {
                    throw error(at: tagStart, "{{/\(name)}} closes no open section")
                }
                guard stack[stack.count - 1].name == name else {
                    let open = stack[stack.count - 1]
                    throw error(at: tagStart, "{{/\(name)}} closes section '\(open.name)' opened at \(place(of: open.offset))")
                }
                let section = stack.removeLast()
                stack[stack.count - 1].nodes.append(.section(section.name, inverted: section.inverted, section.nodes))
            case .comment:
                break
            case .contentType(let type):
                stack[stack.count - 1].nodes.append(.contentType(type))
            }
        }
        flushText()
        if stack.count > 1 {
            let open = stack[stack.count - 1]
            throw error(at: open.offset, "section '\(open.name)' is never closed (no {{/\(open.name)}})")
        }
        return stack[0].nodes
    }

    private struct Tag {
        enum Kind {
            case variable(String, escaped: Bool)
            case sectionStart(String, inverted: Bool)
            case sectionEnd(String)
            case comment
            case contentType(TemplateContentType)
        }
        var kind: Kind
        var mayStandAlone: Bool {
            if case .variable = kind { return false }
            return true
        }
    }

    /// Reads one tag from `{{` to its `}}` (or `}}}`), leaving `position` after it.
    private mutating func readTag() throws(Template.CompileError) -> Tag {
        let start = position
        position += 2
        guard position < bytes.count else { throw error(at: start, "unfinished tag: '{{' at the end of the template") }
        let sigil = bytes[position]
        if sigil == UInt8(ascii: "!") {
            guard let end = find(Self.close, from: position) else { throw error(at: start, "unfinished comment: no '}}'") }
            position = end + 2
            return Tag(kind: .comment)
        }
        let isTriple = sigil == UInt8(ascii: "{")
        if "{&#^/%".utf8.contains(sigil) { position += 1 }
        let closing = isTriple ? Array("}}}".utf8) : Self.close
        guard let end = find(closing, from: position) else {
            throw error(at: start, "unfinished tag: no '\(String(decoding: closing, as: UTF8.self))'")
        }
        let inner = String(decoding: bytes[position..<end], as: UTF8.self)
        let body = inner.trimmingBlanks()
        position = end + closing.count
        switch sigil {
        case UInt8(ascii: "%"):
            return Tag(kind: .contentType(try contentType(body, at: start)))
        case UInt8(ascii: ">"):
            throw error(at: start, "partials ({{>\(body.dropFirst().trimmingBlanks())}}) are not supported by muster's templates")
        case UInt8(ascii: "<"), UInt8(ascii: "$"):
            throw error(at: start, "template inheritance ({{\(Character(Unicode.Scalar(sigil)))...}}) is not supported by muster's templates")
        case UInt8(ascii: "="):
            throw error(at: start, "set delimiters ({{=...=}}) are not supported by muster's templates")
        default:
            break
        }
        let name = try checkedName(body, at: start)
        switch sigil {
        case UInt8(ascii: "{"), UInt8(ascii: "&"): return Tag(kind: .variable(name, escaped: false))
        case UInt8(ascii: "#"): return Tag(kind: .sectionStart(name, inverted: false))
        case UInt8(ascii: "^"): return Tag(kind: .sectionStart(name, inverted: true))
        case UInt8(ascii: "/"): return Tag(kind: .sectionEnd(name))
        default: return Tag(kind: .variable(name, escaped: true))
        }
    }

    private func contentType(_ body: String, at offset: Int) throws(Template.CompileError) -> TemplateContentType {
        let parts = body.split(separator: ":", maxSplits: 1).map { String($0).trimmingBlanks() }
        guard parts.count == 2, parts[0] == "CONTENT_TYPE" else {
            throw error(at: offset, "unknown pragma {{%\(body)}}: only {{% CONTENT_TYPE: NAME}} is supported")
        }
        guard let type = TemplateContentType(rawValue: parts[1]) else {
            let known = TemplateContentType.allCases.map(\.rawValue).joined(separator: ", ")
            throw error(at: offset, "unknown content type '\(parts[1])' (known: \(known))")
        }
        return type
    }

    /// A name of letters, digits, `_`, `-` and `?`, or `.` for the current item.
    private func checkedName(_ name: String, at offset: Int) throws(Template.CompileError) -> String {
        if name == "." { return name }
        guard !name.isEmpty else { throw error(at: offset, "a tag without a name") }
        if name.contains(".") {
            throw error(at: offset, "dotted names ({{\(name)}}) are not supported by muster's templates")
        }
        if name.contains("(") || name.contains(")") {
            throw error(at: offset, "transforms ({{\(name)}}) are not supported by muster's templates")
        }
        guard name.utf8.allSatisfy({ byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "_-?".utf8.contains(byte)
        }) else {
            throw error(at: offset, "'\(name)' is not a name muster's templates support (letters, digits, '_', '-', '?')")
        }
        return name
    }

    private func matches(_ needle: [UInt8], at offset: Int) -> Bool {
        guard offset + needle.count <= bytes.count else { return false }
        for index in needle.indices where bytes[offset + index] != needle[index] { return false }
        return true
    }

    /// Where `needle` starts at or after `offset`, not crossing a line break (a tag is on one line).
    private func find(_ needle: [UInt8], from offset: Int) -> Int? {
        var index = offset
        while index + needle.count <= bytes.count {
            if bytes[index] == UInt8(ascii: "\n") { return nil }
            if matches(needle, at: index) { return index }
            index += 1
        }
        return nil
    }

    private func startOfLine(before offset: Int) -> Int {
        var index = offset
        while index > 0, bytes[index - 1] != UInt8(ascii: "\n") { index -= 1 }
        return index
    }

    /// After blanks from `offset`: the offset past the line break, or the end of the text; nil
    /// when anything else comes first.
    private func endOfLineAfterBlanks(from offset: Int) -> Int? {
        var index = offset
        while index < bytes.count, isBlank(bytes[index]) { index += 1 }
        if index == bytes.count { return index }
        if bytes[index] == UInt8(ascii: "\n") { return index + 1 }
        if bytes[index] == UInt8(ascii: "\r"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { return index + 2 }
        return nil
    }

    private func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private func place(of offset: Int) -> String {
        let (line, column) = lineAndColumn(of: offset)
        return "\(line):\(column)"
    }

    private func lineAndColumn(of offset: Int) -> (Int, Int) {
        var line = 1, lineStart = 0
        for index in 0..<min(offset, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        // Columns count characters, not bytes.
        let column = String(decoding: bytes[lineStart..<min(offset, bytes.count)], as: UTF8.self).count + 1
        return (line, column)
    }

    private func error(at offset: Int, _ problem: String) -> Template.CompileError {
        let (line, column) = lineAndColumn(of: offset)
        return Template.CompileError(file: file, line: line, column: column, problem: problem)
    }
}

private extension StringProtocol {
    func trimmingBlanks() -> String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
