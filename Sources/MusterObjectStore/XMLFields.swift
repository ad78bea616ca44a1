import Foundation

/// Just enough XML for S3's answers: the text of elements by name, in order, and the blocks of
/// a repeated element (`<Contents>...</Contents>`). S3's answers are flat, unnamespaced-looking
/// documents with entity-escaped text; nothing here needs a full parser.
struct XMLFields {
    let text: String

    init(_ data: Data) { text = String(decoding: data, as: UTF8.self) }
    init(text: String) { self.text = text }

    /// Each `<name>...</name>` element's inner text, in order (attributes allowed on the tag).
    func blocks(_ name: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "<\(name)") {
            let after = rest[open.upperBound...]
            guard let first = after.first, first == ">" || first == " " || first == "/" else { rest = after; continue }
            guard let close = after.firstIndex(of: ">") else { break }
            if close > after.startIndex, after[after.index(before: close)] == "/" { found.append(""); rest = after[after.index(after: close)...]; continue }
            let inner = after[after.index(after: close)...]
            guard let end = inner.range(of: "</\(name)>") else { break }
            found.append(String(inner[..<end.lowerBound]))
            rest = inner[end.upperBound...]
        }
        return found
    }

    /// The first `<name>` element's text, entities decoded.
    func value(_ name: String) -> String? { blocks(name).first.map(Self.decode) }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
        // Numeric references (S3 writes control characters in keys as `&#13;`).
        while let start = out.range(of: "&#"), let end = out[start.upperBound...].firstIndex(of: ";") {
            let digits = out[start.upperBound..<end]
            let scalar = digits.hasPrefix("x") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            out.replaceSubrange(start.lowerBound...end, with: scalar.flatMap(Unicode.Scalar.init).map { String(Character($0)) } ?? "")
        }
        return out.replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
