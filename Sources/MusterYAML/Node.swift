import Foundation

/// A position in a YAML source, 1-based like compilers print it.
public struct Mark: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "\(line):\(column)" }
}

/// One node of a parsed YAML document, with where it starts in the source.
public struct Node: Sendable {
    public enum ScalarStyle: Sendable { case plain, quoted, block }

    public indirect enum Value: Sendable {
        case scalar(String, ScalarStyle)
        case sequence([Node])
        /// Pairs in source order; duplicates are kept so validation can report them.
        case mapping([(key: Node, value: Node)])
    }

    public var value: Value
    public var mark: Mark
    public var tag: String?

    public init(_ value: Value, mark: Mark, tag: String? = nil) {
        self.value = value
        self.mark = mark
        self.tag = tag
    }

    /// The text of a scalar node, `nil` for collections.
    public var scalarText: String? {
        if case .scalar(let text, _) = value { return text }
        return nil
    }

    public var kindName: String {
        switch value {
        case .scalar(let text, let style): return ScalarType.infer(text, style: style, tag: tag).name
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// What an untagged scalar means under YAML 1.1's core types, as a human reads it.
public enum ScalarType: Sendable, Equatable {
    case null, bool(Bool), int(Int), float(Double), string(String)

    public var name: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .float: return "a number"
        case .string: return "a string"
        }
    }

    /// Quoted scalars are always strings; plain ones are typed by their text (libyaml leaves
    /// that to us: every untagged scalar reaches the loader as text).
    public static func infer(_ text: String, style: Node.ScalarStyle, tag: String?) -> ScalarType {
        if let tag {
            switch tag {
            case "tag:yaml.org,2002:str": return .string(text)
            case "tag:yaml.org,2002:int": return Int(text).map(ScalarType.int) ?? .string(text)
            case "tag:yaml.org,2002:bool": return bool(text).map(ScalarType.bool) ?? .string(text)
            case "tag:yaml.org,2002:null": return .null
            default: break
            }
        }
        guard style == .plain else { return .string(text) }
        if ["", "~", "null", "Null", "NULL"].contains(text) { return .null }
        if let value = bool(text) { return .bool(value) }
        if let value = int(text) { return .int(value) }
        if let value = Double(text), text.first.map({ $0.isNumber || "+-.".contains($0) }) == true {
            return .float(value)
        }
        return .string(text)
    }

    static func bool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y": return true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N": return false
        default: return nil
        }
    }

    static func int(_ text: String) -> Int? {
        // Most text is no number at all: only a digit, a sign or "_" can start one.
        guard let first = text.utf8.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
                || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: "_") else { return nil }
        let digits = text.utf8.contains(UInt8(ascii: "_")) ? text.replacingOccurrences(of: "_", with: "") : text
        if let value = Int(digits) { return value }
        if digits.hasPrefix("0x"), let value = Int(digits.dropFirst(2), radix: 16) { return value }
        if digits.hasPrefix("0o"), let value = Int(digits.dropFirst(2), radix: 8) { return value }
        return nil
    }
}
