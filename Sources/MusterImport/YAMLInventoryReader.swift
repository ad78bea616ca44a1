import MusterYAML

/// Reads Ansible's YAML inventory format (its `yaml` plugin) from a tree MusterYAML parsed,
/// within MusterYAML's limits: top-level groups (usually just `all`), each a mapping of
/// `hosts` (host pattern to its variables), `vars` and `children` (group name to group). What
/// Ansible itself only warns about and skips is refused here with its place, since an import
/// that silently drops part of the file would hand the operator the wrong cluster.
struct YAMLInventoryReader {
    private var inventory = AnsibleInventory()

    static func read(_ root: Node) throws -> AnsibleInventory {
        var reader = YAMLInventoryReader()
        guard case .mapping(let pairs) = root.value else {
            throw ImportProblem(root.mark, "an Ansible YAML inventory is a mapping of groups (all: {children: ...}), found \(root.kindName)")
        }
        for (key, value) in try unique(pairs) {
            try reader.readGroup(key, value)
        }
        return reader.inventory
    }

    private static func unique(_ pairs: [(key: Node, value: Node)]) throws -> [(key: (String, Mark), value: Node)] {
        var seen = Set<String>()
        return try pairs.map { pair in
            guard let name = pair.key.scalarText else { throw ImportProblem(pair.key.mark, "a key here must be a name, found \(pair.key.kindName)") }
            guard seen.insert(name).inserted else { throw ImportProblem(pair.key.mark, "'\(name)' appears twice in this mapping") }
            return ((name, pair.key.mark), pair.value)
        }
    }

    private mutating func readGroup(_ key: (String, Mark), _ node: Node) throws {
        let (name, mark) = key
        guard INIInventoryReader.isGroupName(name) else { throw ImportProblem(mark, "'\(name)' is not a group name muster reads (no blanks, ':' or brackets)") }
        inventory.declareGroup(name, at: mark)
        guard let pairs = try Self.mappingOrNull(node, "group '\(name)'") else { return }
        for ((section, sectionMark), value) in try Self.unique(pairs) {
            switch section {
            case "hosts":
                for ((pattern, patternMark), variables) in try Self.unique(try Self.mappingOrNull(value, "hosts of group '\(name)'") ?? []) {
                    try readHost(pattern, at: patternMark, variables: variables, group: name)
                }
            case "vars":
                for ((variable, variableMark), variableValue) in try Self.unique(try Self.mappingOrNull(value, "vars of group '\(name)'") ?? []) {
                    inventory.setGroupVariable(variable, Self.value(variableValue, or: variableMark), on: name)
                }
            case "children":
                for (child, childNode) in try Self.unique(try Self.mappingOrNull(value, "children of group '\(name)'") ?? []) {
                    try readGroup(child, childNode)
                    try inventory.addChild(child.0, to: name, at: child.1)
                }
            default:
                throw ImportProblem(sectionMark, "group '\(name)' has the key '\(section)'; a group holds only hosts, vars and children")
            }
        }
    }

    private mutating func readHost(_ pattern: String, at mark: Mark, variables: Node, group: String) throws {
        let (bare, port) = try HostPattern.splitPort(pattern, at: mark)
        let names = try HostPattern.expand(bare, at: mark)
        let pairs = try Self.unique(try Self.mappingOrNull(variables, "host '\(pattern)'") ?? [])
        for name in names {
            inventory.addHost(name, to: group, at: mark)
            if let port { inventory.setHostVariable("ansible_port", AnsibleValue(text: port, mark: mark), on: name) }
            for ((key, keyMark), value) in pairs {
                inventory.setHostVariable(key, Self.value(value, or: keyMark), on: name)
            }
        }
    }

    private static func value(_ node: Node, or keyMark: Mark) -> AnsibleValue {
        // A null value (`ip:`) has no place of its own worth pointing at: point at its key.
        if case .scalar(let text, let style) = node.value {
            if ScalarType.infer(text, style: style, tag: node.tag) == .null { return AnsibleValue(text: nil, mark: keyMark) }
            return AnsibleValue(text: text, mark: node.mark)
        }
        return AnsibleValue(text: nil, mark: node.mark, collection: node.kindName)
    }

    /// The pairs of a mapping; nil for an empty value (`etcd:` with nothing under it).
    private static func mappingOrNull(_ node: Node, _ what: String) throws -> [(key: Node, value: Node)]? {
        switch node.value {
        case .mapping(let pairs): return pairs
        case .scalar(let text, let style) where ScalarType.infer(text, style: style, tag: node.tag) == .null: return nil
        default: throw ImportProblem(node.mark, "\(what) must be a mapping, found \(node.kindName)")
        }
    }
}
