import MusterYAML

/// Which conf.yml changes a restart can carry into a running cluster.
enum ConfigChange {
    /// Keys etcd reads only when it bootstraps; once a member has data it silently keeps the old
    /// ones, so claiming to have applied a change to them would be a lie.
    static let bootstrapOnly: Set<String> = [
        "name", "initial-cluster", "initial-cluster-token", "initial-cluster-state",
        "initial-advertise-peer-urls", "discovery", "discovery-srv", "discovery-srv-name",
        "discovery-proxy", "discovery-fallback",
    ]

    /// The bootstrap-only keys whose values differ between two conf.yml texts (a key present in
    /// only one of them counts as changed).
    static func keysEtcdIgnores(from old: String, to new: String) -> [String] {
        let before = topLevelScalars(old), after = topLevelScalars(new)
        return bootstrapOnly.filter { before[$0] != after[$0] }.sorted()
    }

    static func topLevelScalars(_ text: String) -> [String: String] {
        guard let node = try? YAMLParser.parse(text), case .mapping(let pairs) = node.value else { return [:] }
        var values: [String: String] = [:]
        for pair in pairs {
            if let key = pair.key.scalarText, let value = pair.value.scalarText { values[key] = value }
        }
        return values
    }
}
