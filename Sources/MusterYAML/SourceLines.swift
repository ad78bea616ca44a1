/// Lines and columns counted the way libyaml counts them, so a mark we compute ourselves (from
/// a byte offset) and the source line printed under a message agree with libyaml's own marks.
///
/// libyaml ends a line at LF, CR, CR LF, NEL (U+0085), LS (U+2028) and PS (U+2029), and counts
/// columns in characters. Swift's `split(separator: "\n")` does neither: it never splits at
/// CR LF (one Character) and counts graphemes.
public enum SourceLines {
    /// The lines numbered `wanted` (1-based) of `bytes`, without their line breaks, decoded as
    /// UTF-8 (invalid bytes shown as U+FFFD). Only those: a document of a million empty lines
    /// must not become a million strings to print one error.
    public static func lines<Bytes: Collection<UInt8>>(numbered wanted: Set<Int>, in bytes: Bytes) -> [Int: String] where Bytes.Index == Int {
        var found: [Int: String] = [:]
        guard let last = wanted.max() else { return found }
        var line = 1
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex, line <= last {
            let length = lineBreakLength(bytes, at: index)
            if length > 0 {
                if wanted.contains(line) { found[line] = String(decoding: bytes[start..<index], as: UTF8.self) }
                line += 1
                index += length
                start = index
            } else {
                index += 1
            }
        }
        if line <= last, wanted.contains(line) {
            found[line] = String(decoding: bytes[start..<bytes.endIndex], as: UTF8.self)
        }
        return found
    }

    /// The 1-based mark of the byte at `offset` (libyaml reports reader errors, such as invalid
    /// UTF-8 or a control character, only as an offset).
    public static func mark<Bytes: Collection<UInt8>>(ofOffset offset: Int, in bytes: Bytes) -> Mark where Bytes.Index == Int {
        var line = 1, column = 1
        // A byte order mark counts as a column: with the encoding set to UTF-8 (as YAMLParser
        // sets it) libyaml reads it as a character and skips it with a column of its own.
        var index = bytes.startIndex
        let end = min(bytes.startIndex + offset, bytes.endIndex)
        while index < end {
            let length = lineBreakLength(bytes, at: index)
            if length > 0 {
                line += 1
                column = 1
                index += length
            } else {
                // One column per character: continuation bytes (10xxxxxx) add none.
                if bytes[index] & 0xC0 != 0x80 { column += 1 }
                index += 1
            }
        }
        return Mark(line: line, column: column)
    }

    /// How many bytes the line break at `index` takes, 0 if there is none.
    private static func lineBreakLength<Bytes: Collection<UInt8>>(_ bytes: Bytes, at index: Int) -> Int where Bytes.Index == Int {
        let byte = bytes[index]
        let next = index + 1 < bytes.endIndex ? bytes[index + 1] : nil
        switch byte {
        case 0x0A: return 1
        case 0x0D: return next == 0x0A ? 2 : 1
        case 0xC2 where next == 0x85: return 2
        case 0xE2 where next == 0x80 && index + 2 < bytes.endIndex
                        && (bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9): return 3
        default: return 0
        }
    }
}
