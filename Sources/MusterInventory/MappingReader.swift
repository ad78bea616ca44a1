import MusterYAML

/// Reads one YAML mapping: reports duplicate and unknown keys and wrong types, so each model
/// type only says which keys it takes and what they must be.
struct MappingReader {
    let node: Node
    let context: String
    let sink: DiagnosticSink
    private var values: [String: Node] = [:]
    private(set) var keysInOrder: [(name: String, key: Node, value: Node)] = []

    /// `nil` (after reporting) when `node` is not a mapping.
    init?(_ node: Node, context: String, sink: DiagnosticSink) {
        guard case .mapping(let pairs) = node.value else {
            sink.error(node.mark, "\(context) must be a mapping, found \(node.kindName)")
            return nil
        }
        self.node = node
        self.context = context
        self.sink = sink
        var firstSeen: [String: Mark] = [:]
        for pair in pairs {
            guard let name = pair.key.scalarText else {
                sink.error(pair.key.mark, "keys in \(context) must be plain strings")
                continue
            }
            // libyaml accepts duplicate keys; a silent last-one-wins would hide a typo.
            if let first = firstSeen[name] {
                sink.error(pair.key.mark,
                           "duplicate key '\(name)' in \(context) (first defined at \(first))")
                continue
            }
            firstSeen[name] = pair.key.mark
            values[name] = pair.value
            keysInOrder.append((name, pair.key, pair.value))
        }
    }

    /// Reports every key not in `known`.
    func rejectUnknownKeys(_ known: Set<String>) {
        for entry in keysInOrder where !known.contains(entry.name) {
            let hint = closest(to: entry.name, in: known).map { "; did you mean '\($0)'?" } ?? ""
            sink.error(entry.key.mark, "unknown key '\(entry.name)' in \(context)\(hint)")
        }
    }

    subscript(_ key: String) -> Node? { values[key] }

    func string(_ key: String) -> String? {
        guard let node = values[key] else { return nil }
        switch node.value {
        case .scalar(let text, let style):
            guard !rejectControlCharacters(text, at: node.mark, what: "'\(key)' in \(context)") else { return nil }
            switch ScalarType.infer(text, style: style, tag: node.tag) {
            case .string(let value): return value
            case .null: return nil
            default:
                // Numbers are fine where a string is wanted (a token "1234"); booleans are not.
                if case .bool = ScalarType.infer(text, style: style, tag: node.tag) {
                    sink.error(node.mark, "'\(key)' in \(context) must be a string, found a boolean (quote it)")
                    return nil
                }
                return text
            }
        default:
            sink.error(node.mark, "'\(key)' in \(context) must be a string, found \(node.kindName)")
            return nil
        }
    }

    func int(_ key: String) -> Int? {
        guard let node = values[key] else { return nil }
        if case .scalar(let text, let style) = node.value,
           case .int(let value) = ScalarType.infer(text, style: style, tag: node.tag) {
            return value
        }
        sink.error(node.mark, "'\(key)' in \(context) must be an integer, found \(node.kindName)")
        return nil
    }

    func bool(_ key: String) -> Bool? {
        guard let node = values[key] else { return nil }
        if case .scalar(let text, let style) = node.value,
           case .bool(let value) = ScalarType.infer(text, style: style, tag: node.tag) {
            return value
        }
        sink.error(node.mark, "'\(key)' in \(context) must be true or false, found \(node.kindName)")
        return nil
    }

    /// A list of strings, each with its mark.
    func stringList(_ key: String) -> [(String, Mark)]? {
        guard let node = values[key] else { return nil }
        guard case .sequence(let items) = node.value else {
            sink.error(node.mark, "'\(key)' in \(context) must be a list, found \(node.kindName)")
            return nil
        }
        var result: [(String, Mark)] = []
        for item in items {
            if let text = item.scalarText, case .string = ScalarType.infer(text, style: .quoted, tag: nil) {
                if rejectControlCharacters(text, at: item.mark, what: "an item of '\(key)' in \(context)") { continue }
                result.append((text, item.mark))
            } else {
                sink.error(item.mark, "items of '\(key)' in \(context) must be names, found \(item.kindName)")
            }
        }
        return result
    }

    func mapping(_ key: String, context: String) -> MappingReader? {
        guard let node = values[key] else { return nil }
        return MappingReader(node, context: context, sink: sink)
    }

    func mark(_ key: String) -> Mark { values[key]?.mark ?? node.mark }

    /// Reports `text` when it holds a control character: every string of an inventory ends up
    /// in a shell command, a file on a host, a config line or a C string, where a newline, a NUL
    /// or an escape either ends the value early or smuggles in another. True when reported.
    func rejectControlCharacters(_ text: String, at mark: Mark, what: String) -> Bool {
        guard let bad = Names.firstControlCharacter(text) else { return false }
        let hex = String(bad.value, radix: 16, uppercase: true)
        let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        sink.error(mark, "\(what) holds the control character \(code); no inventory value may")
        return true
    }
}

extension Node {
    /// An untagged `~`, `null` or nothing: a key that says nothing.
    var isNull: Bool {
        if case .scalar(let text, let style) = value { return ScalarType.infer(text, style: style, tag: tag) == .null }
        return false
    }
}

/// The known name nearest to a misspelt one, when it is close enough to be a likely typo.
public func closest(to name: String, in known: Set<String>) -> String? {
    let allowed = max(2, name.count / 3)
    // The distance is at least the difference in length: skip those that cannot be close, so a
    // 16 KiB key is not compared character by character with every known one.
    let candidates = known.filter { abs($0.count - name.count) <= allowed }
    let best = candidates.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
    guard let best, best.1 <= allowed else { return nil }
    return best.0
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
