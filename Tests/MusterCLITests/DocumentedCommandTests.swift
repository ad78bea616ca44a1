import Foundation
import Testing

/// Every `muster ...` command line in the README's and docs' `sh` blocks is one the binary's own
/// argument parser takes: its subcommands exist, each flag belongs to that command, an option
/// with a fixed set of values gets one of them, required arguments are there. The parser's view
/// comes from `muster --experimental-dump-help`, so a renamed flag fails this test until the
/// manual says the new name.
@Suite struct DocumentedCommandTests {
    struct Argument {
        var kind: String
        var names: [String]
        var isOptional: Bool
        var allValues: [String]?
    }

    struct Command {
        var name: String
        var arguments: [Argument]
        var subcommands: [Command]

        init(_ json: [String: Any]) {
            name = json["commandName"] as? String ?? ""
            arguments = (json["arguments"] as? [[String: Any]] ?? []).map { argument in
                Argument(kind: argument["kind"] as? String ?? "",
                         names: (argument["names"] as? [[String: Any]] ?? []).compactMap { name in
                             guard let text = name["name"] as? String else { return nil }
                             return (name["kind"] as? String == "short" ? "-" : "--") + text
                         },
                         isOptional: argument["isOptional"] as? Bool ?? true,
                         allValues: argument["allValues"] as? [String])
            }
            subcommands = (json["subcommands"] as? [[String: Any]] ?? []).map(Command.init)
        }
    }

    static func commandTree() throws -> Command {
        let run = try MusterBinary().run(["--experimental-dump-help"])
        guard run.status == 0, let json = try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any],
              let command = json["command"] as? [String: Any] else {
            throw DocumentedCommandError("muster --experimental-dump-help: \(run)")
        }
        return Command(command)
    }

    /// `(file:line, words)` of every muster command in an `sh` block, whether it opens the line,
    /// follows a `VAR=value` or sits inside `$(...)`.
    static func documentedCommands() throws -> [(place: String, words: [String])] {
        let root = MusterBinary.packageRoot
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        var found: [(String, [String])] = []
        for file in ["README.md"] + docs {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            var inShell = false
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("```") {
                    inShell = !inShell && (trimmed == "```sh" || trimmed == "```bash")
                    continue
                }
                guard inShell else { continue }
                for words in commands(in: shellWords(String(line))) {
                    found.append(("\(file):\(index + 1)", words))
                }
            }
        }
        return found
    }

    /// Words of a line, quotes removed; `#` starts a comment; `$(` and `)` are words of their own.
    static func shellWords(_ line: String) -> [String] {
        var words: [String] = [], current = "", quote: Character?
        // A quoted command substitution holds words of its own: `"$(muster env ...)"`.
        let unquoted = line.replacingOccurrences(of: "\"$(", with: " $( ").replacingOccurrences(of: ")\"", with: " ) ")
        var characters = Array(unquoted)[...]
        func flush() { if !current.isEmpty { words.append(current); current = "" } }
        while let character = characters.popFirst() {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
                continue
            }
            switch character {
            case "'", "\"": quote = character
            case " ", "\t": flush()
            case "#" where current.isEmpty: return words + []
            case "$" where characters.first == "(": flush(); characters.removeFirst(); words.append("$(")
            case ")", ";", "|", "&": flush(); words.append(String(character))
            default: current.append(character)
            }
        }
        flush()
        return words
    }

    /// The muster commands among a line's words: from `muster` to the next operator.
    static func commands(in words: [String]) -> [[String]] {
        var result: [[String]] = [], index = 0
        while index < words.count {
            guard words[index] == "muster" else { index += 1; continue }
            var end = index + 1, command: [String] = []
            while end < words.count, ![")", ";", "|", "&"].contains(words[end]) {
                guard words[end] == "$(" else { command.append(words[end]); end += 1; continue }
                // A substitution given as an argument is one word, whatever it runs.
                var depth = 0
                repeat {
                    if words[end] == "$(" { depth += 1 } else if words[end] == ")" { depth -= 1 }
                    end += 1
                } while end < words.count && depth > 0
                command.append("$(...)")
            }
            result.append(command)
            index += 1
        }
        return result
    }

    /// Why the parser would refuse these words, or nil.
    static func problem(with words: [String], in root: Command) -> String? {
        var command = root, rest = words[...]
        while let next = rest.first, let sub = command.subcommands.first(where: { $0.name == next }) {
            command = sub
            rest.removeFirst()
        }
        if !command.subcommands.isEmpty && command.arguments.allSatisfy({ $0.kind != "positional" }) && rest.first.map({ !$0.hasPrefix("-") }) == true {
            return "\(command.name) has no subcommand \(rest.first!)"
        }
        var positionals = command.arguments.filter { $0.kind == "positional" }[...]
        var given = Set<String>()
        while let word = rest.popFirst() {
            if word.hasPrefix("-") && word != "-" {
                let name = String(word.split(separator: "=", maxSplits: 1)[0])
                if name == "--help" || name == "-h" { continue }
                guard let argument = command.arguments.first(where: { $0.names.contains(name) }) else {
                    return "\(command.name) has no \(name)"
                }
                given.insert(name)
                if argument.kind == "option" {
                    let value = word.contains("=") ? String(word.split(separator: "=", maxSplits: 1)[1]) : rest.popFirst()
                    guard let value else { return "\(name) needs a value" }
                    if let allowed = argument.allValues, !allowed.contains(value), !value.hasPrefix("$") {
                        return "\(name) takes \(allowed.joined(separator: "|")), not \(value)"
                    }
                }
            } else if positionals.popFirst() == nil {
                return "\(command.name) takes no further argument \(word)"
            }
        }
        if let missing = positionals.first(where: { !$0.isOptional }) {
            return "\(command.name) needs its \(missing.names.first ?? "positional") argument"
        }
        for argument in command.arguments where argument.kind == "option" && !argument.isOptional {
            if given.isDisjoint(with: argument.names) { return "\(command.name) needs \(argument.names.joined(separator: "/"))" }
        }
        return nil
    }

    @Test func everyDocumentedCommandParses() throws {
        let tree = try Self.commandTree()
        let commands = try Self.documentedCommands()
        #expect(commands.count >= 10, "the README's tour alone has more: \(commands.map(\.place))")
        for (place, words) in commands {
            if let problem = Self.problem(with: words, in: tree) {
                Issue.record("\(place): muster \(words.joined(separator: " ")): \(problem)")
            }
        }
    }

    @Test func theCheckCatchesWhatTheParserRefuses() throws {
        let tree = try Self.commandTree()
        #expect(Self.problem(with: ["up", "inv.yml", "--dry-run"], in: tree) == nil)
        #expect(Self.problem(with: ["env", "inv.yml", "--for", "kubeadm", "--name=x"], in: tree) == nil)
        #expect(Self.problem(with: ["up", "inv.yml", "--dry-rum"], in: tree) != nil)
        #expect(Self.problem(with: ["env", "inv.yml", "--for", "nginx"], in: tree) != nil)
        #expect(Self.problem(with: ["snapshot", "sav", "inv.yml"], in: tree) != nil)
        #expect(Self.problem(with: ["replace", "inv.yml"], in: tree) != nil, "--member is required")
        #expect(Self.problem(with: ["verify"], in: tree) != nil, "the inventory is required")
        #expect(Self.commands(in: Self.shellWords(#"eval "$(muster env a.yml --for patroni)" && etcdctl x # muster nope"#))
                == [["env", "a.yml", "--for", "patroni"]])
        #expect(Self.commands(in: Self.shellWords(#"muster state export a.yml --recipient "$(age-keygen -y k)" --out f"#))
                == [["state", "export", "a.yml", "--recipient", "$(...)", "--out", "f"]])
    }
}

struct DocumentedCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
