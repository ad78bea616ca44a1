/// What a host's variables come to, by Ansible's precedence for an inventory: `all`'s group
/// variables, then every group the host is in from the shallowest to the deepest (by name
/// within a depth), then the host's own variables; a later one wins.
struct AnsibleVariables {
    let inventory: AnsibleInventory
    private let depths: [String: Int]

    init(_ inventory: AnsibleInventory) {
        self.inventory = inventory
        // A group's depth is one more than its deepest parent; groups with no parent hang under
        // `all` (depth 0). Loops were refused as they were declared, so this settles.
        var depths: [String: Int] = [:]
        for name in inventory.groupNames { depths[name] = name == "all" ? 0 : 1 }
        var changed = true
        var rounds = 0
        while changed, rounds <= depths.count {
            changed = false
            rounds += 1
            for name in inventory.groupNames {
                for child in inventory.group(name)?.children ?? [] where depths[child, default: 1] < depths[name, default: 0] + 1 {
                    depths[child] = depths[name, default: 0] + 1
                    changed = true
                }
            }
        }
        self.depths = depths
    }

    /// The groups `host` belongs to: those listing it and all their ancestors.
    func groups(of host: String) -> Set<String> {
        var member: Set<String> = ["all"]
        for name in inventory.groupNames where inventory.group(name)?.hosts.contains(host) == true {
            member.insert(name)
        }
        var grew = true
        while grew {
            grew = false
            for name in inventory.groupNames where !member.contains(name) {
                if inventory.group(name)?.children.contains(where: { member.contains($0) }) == true {
                    member.insert(name)
                    grew = true
                }
            }
        }
        return member
    }

    func variables(of host: String) -> [String: AnsibleValue] {
        let ordered = groups(of: host).sorted { (depths[$0] ?? 1, $0) < (depths[$1] ?? 1, $1) }
        var merged: [String: AnsibleValue] = [:]
        for group in ordered {
            merged.merge(inventory.group(group)?.vars ?? [:]) { _, later in later }
        }
        merged.merge(inventory.host(host)?.vars ?? [:]) { _, later in later }
        return merged
    }
}
