import MusterYAML

/// A word of an INI host line and where it starts.
struct ShellWord {
    var text: String
    var mark: Mark
}

/// Splits an INI host line the way Ansible does (Python's `shlex.split(line, comments=True)`):
/// words at blanks, single quotes literal, double quotes with backslash escapes, a backslash
/// escaping the next character outside quotes, and `#` outside quotes ending the line.
enum ShellWords {
    static func split(_ scalars: [Unicode.Scalar], line: Int) throws -> [ShellWord] {
        var words: [ShellWord] = []
        var current = String.UnicodeScalarView()
        var start: Int?
        var index = 0
        func finish() {
            if let column = start { words.append(ShellWord(text: String(current), mark: Mark(line: line, column: column + 1))) }
            current = String.UnicodeScalarView()
            start = nil
        }
        while index < scalars.count {
            let scalar = scalars[index]
            switch scalar {
            case " ", "\t":
                finish()
            case "#":
                finish()
                return words
            case "'", "\"":
                if start == nil { start = index }
                let opened = index
                index += 1
                while index < scalars.count, scalars[index] != scalar {
                    if scalar == "\"", scalars[index] == "\\", index + 1 < scalars.count,
                       ["\\", "\"", "$", "`"].contains(scalars[index + 1]) {
                        index += 1
                    }
                    current.append(scalars[index])
                    index += 1
                }
                guard index < scalars.count else {
                    throw ImportProblem(Mark(line: line, column: opened + 1), "this quote is never closed")
                }
            case "\\":
                if start == nil { start = index }
                index += 1
                guard index < scalars.count else {
                    throw ImportProblem(Mark(line: line, column: index), "a backslash ends the line")
                }
                current.append(scalars[index])
            default:
                if start == nil { start = index }
                current.append(scalar)
            }
            index += 1
        }
        finish()
        return words
    }
}

/// C0 and C1 controls, DEL, and Unicode's line and paragraph separators: none belongs in a
/// host name, address, user or path.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .lineSeparator, .paragraphSeparator: return true
    default: return false
    }
}
