internal import CLibYAML
import Foundation

/// Writes YAML scalars with libyaml's emitter, so rendered files never hold a value that a reader
/// could take for another type (`yes`, `0755`, `1:20`, `null`).
public enum YAMLEmitter {
    /// The YAML text of one string scalar: plain when it reads back as the same string,
    /// single-quoted otherwise (libyaml escapes what it must).
    public static func scalar(_ text: String) -> String {
        let plainIsSafe = ScalarType.infer(text, style: .plain, tag: nil) == .string(text)
            && !looksLikeSexagesimal(text)
        if isInert(text) { return plainIsSafe ? text : "'" + text + "'" }
        let style = plainIsSafe ? YAML_ANY_SCALAR_STYLE : YAML_SINGLE_QUOTED_SCALAR_STYLE
        return emit(text, style: style) ?? "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// Text libyaml writes back unchanged: a letter, digit or `/` first, then only letters,
    /// digits and `/._=,+-`, and `:` before anything but the end (so never `: `, ` #`, a
    /// leading indicator, a quote to double or a break). For it libyaml emits the text plain, or
    /// between single quotes when asked, so the emitter (a libyaml emitter set up and torn down
    /// per value, most of a large render's quoting time) is skipped; any other text goes to
    /// libyaml. The paths, names and URLs of rendered files are all of this kind.
    static func isInert(_ text: String) -> Bool {
        let bytes = text.utf8
        guard let first = bytes.first, isAlphanumeric(first) || first == UInt8(ascii: "/"),
              bytes.last != UInt8(ascii: ":") else { return false }
        return bytes.allSatisfy { byte in
            isAlphanumeric(byte) || "/._=,+-:".utf8.contains(byte)
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// YAML 1.1 readers (Go's yaml.v2 among them) read `1:20` as the base-60 integer 80.
    static func looksLikeSexagesimal(_ text: String) -> Bool {
        guard text.utf8.contains(UInt8(ascii: ":")), let first = text.first, first.isNumber || first == "-" || first == "+" else {
            return false
        }
        return text.allSatisfy { $0.isNumber || ":._+-".contains($0) }
    }

    private static func emit(_ text: String, style: yaml_scalar_style_t) -> String? {
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else { return nil }
        defer { yaml_emitter_delete(&emitter) }
        let output = OutputBuffer()
        let context = Unmanaged.passUnretained(output).toOpaque()
        yaml_emitter_set_output(&emitter, { context, buffer, size in
            guard let context, let buffer else { return 0 }
            let output = Unmanaged<OutputBuffer>.fromOpaque(context).takeUnretainedValue()
            output.bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, context)
        yaml_emitter_set_unicode(&emitter, 1)
        yaml_emitter_set_width(&emitter, -1)
        var event = yaml_event_t()
        // yaml_emitter_emit takes ownership of each event, even when it fails.
        guard yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING) == 1,
              yaml_emitter_emit(&emitter, &event) == 1,
              yaml_document_start_event_initialize(&event, nil, nil, nil, 1) == 1,
              yaml_emitter_emit(&emitter, &event) == 1 else { return nil }
        // A trailing NUL keeps the buffer non-empty, so an empty scalar still has an address.
        var bytes = Array(text.utf8)
        let length = bytes.count
        bytes.append(0)
        let ok = bytes.withUnsafeMutableBufferPointer { buffer -> Bool in
            yaml_scalar_event_initialize(&event, nil, nil, buffer.baseAddress, Int32(length), 1, 1, style) == 1
                && yaml_emitter_emit(&emitter, &event) == 1
        }
        guard ok,
              yaml_document_end_event_initialize(&event, 1) == 1,
              yaml_emitter_emit(&emitter, &event) == 1,
              yaml_stream_end_event_initialize(&event) == 1,
              yaml_emitter_emit(&emitter, &event) == 1 else { return nil }
        var result = String(decoding: output.bytes, as: UTF8.self)
        while result.hasSuffix("\n") { result.removeLast() }
        if result.hasSuffix("\n...") { result.removeLast(4) }
        if result == "..." { return nil }
        return result
    }
}

private final class OutputBuffer {
    var bytes: [UInt8] = []
}
