import MusterYAML

/// Reads Ansible's INI inventory format as its `ini` plugin does: hosts before any section are
/// `ungrouped`; `[group]` lists host patterns with inline `key=value` variables (shell-like
/// quoting, `#` starts a comment), `[group:vars]` holds `key=value` lines and
/// `[group:children]` names child groups. A `:vars` or `:children` reference to a group the
/// file never declares is an error, as it is in Ansible.
struct INIInventoryReader {
    private enum Section { case hosts, vars, children }

    private var inventory = AnsibleInventory()
    private var group = "ungrouped"
    private var section = Section.hosts
    /// Groups named under `:children` or `:vars` before (or without) a declaration of their own.
    private var pending: [String: (mark: Mark, message: String)] = [:]
    private var pendingChildren: [String: [(parent: String, mark: Mark)]] = [:]

    static func read(_ text: String) throws -> AnsibleInventory {
        var reader = INIInventoryReader()
        reader.inventory.declareGroup("ungrouped", at: Mark(line: 1, column: 1))
        for (number, line) in lines(of: text).enumerated() {
            try reader.read(line, number: number + 1)
        }
        if let first = reader.pending.values.min(by: { ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column) }) {
            throw ImportProblem(first.mark, first.message)
        }
        return reader.inventory
    }

    /// Lines as libyaml and muster's error excerpts count them: LF, CR, CR LF, NEL, LS, PS.
    static func lines(of text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = [[]]
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n" where previousWasCR:
                previousWasCR = false
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                lines.append([])
                previousWasCR = scalar == "\r"
            default:
                lines[lines.count - 1].append(scalar)
                previousWasCR = false
            }
        }
        return lines
    }

    private mutating func read(_ scalars: [Unicode.Scalar], number: Int) throws {
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return }
        let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        let line = String(String.UnicodeScalarView(scalars[start...end]))
        let mark = Mark(line: number, column: start + 1)
        if line.hasPrefix("#") || line.hasPrefix(";") { return }
        // `[::1]:2222` is a host; a header ends with `]` (before any comment).
        if line.hasPrefix("["), (line.split(separator: "#", maxSplits: 1).first.map(String.init) ?? "").trimmingSpaces.hasSuffix("]") {
            try readSectionHeader(line, at: mark)
            return
        }
        if let control = scalars.first(where: { isControl($0) && $0 != "\t" }) {
            throw ImportProblem(mark, "a control character (U+\(String(control.value, radix: 16, uppercase: true))) in an inventory line")
        }
        switch section {
        case .hosts: try readHosts(scalars, number: number)
        case .vars: try readVariable(line, at: mark)
        case .children: try readChild(line, at: mark)
        }
    }

    private mutating func readSectionHeader(_ line: String, at mark: Mark) throws {
        var header = line
        if let comment = header.firstIndex(of: "#") { header = String(header[..<comment]) }
        header = String(header.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard header.hasSuffix("]"), header.count > 2 else {
            throw ImportProblem(mark, "a section header is [GROUP], [GROUP:vars] or [GROUP:children], found \(line)")
        }
        let inside = header.dropFirst().dropLast()
        let parts = inside.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, let name = parts.first, Self.isGroupName(name) else {
            throw ImportProblem(mark, "a section header is [GROUP], [GROUP:vars] or [GROUP:children] with no spaces, found \(line)")
        }
        switch parts.count == 2 ? parts[1] : "hosts" {
        case "hosts":
            section = .hosts
        case "vars":
            section = .vars
        case "children":
            section = .children
        default:
            throw ImportProblem(Mark(line: mark.line, column: mark.column + name.unicodeScalars.count + 2),
                                "section [\(inside)] has the type '\(parts[1])'; muster reads only [GROUP], [GROUP:vars] and [GROUP:children]")
        }
        group = name
        let known = inventory.group(name) != nil
        if !known, section == .vars, pending[name] == nil {
            pending[name] = (mark, "section [\(name):vars] is for a group the file never declares ([\(name)] or [\(name):children])")
        }
        inventory.declareGroup(name, at: mark)
        if section != .vars {
            pending[name] = nil
            for child in pendingChildren.removeValue(forKey: name) ?? [] {
                try inventory.addChild(name, to: child.parent, at: child.mark)
            }
        }
    }

    static func isGroupName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0 == " " || $0 == "\t" || $0 == ":" || $0 == "]" || $0 == "[" || isControl($0) }
    }

    private mutating func readHosts(_ scalars: [Unicode.Scalar], number: Int) throws {
        let tokens = try ShellWords.split(scalars, line: number)
        guard let first = tokens.first else { return }
        let (pattern, port) = try HostPattern.splitPort(first.text, at: first.mark)
        let names = try HostPattern.expand(pattern, at: first.mark)
        var variables: [(String, AnsibleValue)] = []
        if let port { variables.append(("ansible_port", AnsibleValue(text: port, mark: first.mark))) }
        for token in tokens.dropFirst() {
            guard let equals = token.text.firstIndex(of: "="), equals != token.text.startIndex else {
                throw ImportProblem(token.mark, "expected a key=value host variable, found '\(token.text)'")
            }
            let key = String(token.text[..<equals])
            let valueMark = Mark(line: token.mark.line, column: token.mark.column + key.unicodeScalars.count + 1)
            variables.append((key, AnsibleValue(text: String(token.text[token.text.index(after: equals)...]), mark: valueMark)))
        }
        for name in names {
            inventory.addHost(name, to: group, at: first.mark)
            for (key, value) in variables { inventory.setHostVariable(key, value, on: name) }
        }
    }

    /// `key=value` of a `:vars` section: the value is the rest of the line, as Ansible reads it.
    private mutating func readVariable(_ line: String, at mark: Mark) throws {
        guard let equals = line.firstIndex(of: "=") else {
            throw ImportProblem(mark, "expected key=value in section [\(group):vars], found '\(line)'")
        }
        let key = String(line[..<equals]).trimmingSpaces
        let rawValue = line[line.index(after: equals)...]
        let leading = rawValue.prefix(while: { $0 == " " || $0 == "\t" }).unicodeScalars.count
        let value = String(rawValue).trimmingSpaces
        guard !key.isEmpty else { throw ImportProblem(mark, "a variable in section [\(group):vars] has no name") }
        let column = mark.column + line[..<equals].unicodeScalars.count + 1 + leading
        inventory.setGroupVariable(key, AnsibleValue(text: Self.unquoted(value), mark: Mark(line: mark.line, column: column)), on: group)
    }

    /// Ansible evaluates a `:vars` value as a Python literal when it is one: a quoted string
    /// loses its quotes.
    private static func unquoted(_ value: String) -> String {
        for quote in ["\"", "'"] where value.count >= 2 && value.hasPrefix(quote) && value.hasSuffix(quote) {
            return String(value.dropFirst().dropLast())
        }
        return value
    }

    private mutating func readChild(_ line: String, at mark: Mark) throws {
        var name = line
        if let comment = name.firstIndex(of: "#") { name = String(name[..<comment]).trimmingSpaces }
        guard Self.isGroupName(name) else {
            throw ImportProblem(mark, "section [\(group):children] lists group names, one a line; found '\(line)'")
        }
        if inventory.group(name) != nil {
            try inventory.addChild(name, to: group, at: mark)
        } else {
            pendingChildren[name, default: []].append((group, mark))
            if pending[name] == nil {
                pending[name] = (mark, "section [\(group):children] names group '\(name)', which the file never declares")
            }
        }
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
