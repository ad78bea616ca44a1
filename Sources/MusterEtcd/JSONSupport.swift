import Foundation

/// Decoding helpers for etcd's gRPC JSON gateway: 64-bit integers arrive as decimal strings
/// (sometimes as numbers), and fields holding a zero value (0, false, "", []) are omitted.
extension KeyedDecodingContainer {
    func flexUInt64(_ key: Key) throws -> UInt64 {
        guard contains(key), try !decodeNil(forKey: key) else { return 0 }
        if let text = try? decode(String.self, forKey: key) {
            guard let value = UInt64(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: self, debugDescription: "not an unsigned 64-bit integer: \(text)")
            }
            return value
        }
        return try decode(UInt64.self, forKey: key)
    }

    func flexInt64(_ key: Key) throws -> Int64 {
        guard contains(key), try !decodeNil(forKey: key) else { return 0 }
        if let text = try? decode(String.self, forKey: key) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: self, debugDescription: "not a 64-bit integer: \(text)")
            }
            return value
        }
        return try decode(Int64.self, forKey: key)
    }

    func flexBool(_ key: Key) throws -> Bool {
        guard contains(key), try !decodeNil(forKey: key) else { return false }
        if let text = try? decode(String.self, forKey: key) { return text == "true" }
        return try decode(Bool.self, forKey: key)
    }

    func flexString(_ key: Key) throws -> String {
        try decodeIfPresent(String.self, forKey: key) ?? ""
    }

    func flexStrings(_ key: Key) throws -> [String] {
        try decodeIfPresent([String].self, forKey: key) ?? []
    }

    func flexArray<T: Decodable>(_ type: [T].Type, _ key: Key) throws -> [T] {
        try decodeIfPresent(type, forKey: key) ?? []
    }
}

/// Coding key from any string, for the gateway's mixed snake_case / camelCase names.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A JSON value with deterministic output: object keys sorted, two-space indentation, explicit
/// `null`. Used for `muster verify --output json`, whose shape is documented in VERIFY_JSON.md.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public func serialized() -> String {
        var out = ""
        write(into: &out, indent: 0)
        out.append("\n")
        return out
    }

    private func write(into out: inout String, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .uint(let value): out += String(value)
        case .double(let value):
            out += value.isFinite ? String(format: "%.3f", value) : "null"
        case .string(let value): JSONValue.writeString(value, into: &out)
        case .array(let values):
            if values.isEmpty { out += "[]"; return }
            out += "[\n"
            for (index, value) in values.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                value.write(into: &out, indent: indent + 2)
                out += index == values.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = members.keys.sorted()
            for (index, key) in keys.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                JSONValue.writeString(key, into: &out)
                out += ": "
                members[key]!.write(into: &out, indent: indent + 2)
                out += index == keys.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    private static func writeString(_ value: String, into out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
