import MusterYAML

/// A problem at a place in the Ansible file being imported.
struct ImportProblem: Error {
    var mark: Mark
    var message: String
    init(_ mark: Mark, _ message: String) {
        self.mark = mark
        self.message = message
    }
}

/// One variable as the Ansible file sets it. `text` is nil for a YAML null, and for a list or
/// mapping (`collection` then names it), which no variable muster reads may be.
struct AnsibleValue {
    var text: String?
    var mark: Mark
    var collection: String?

    init(text: String?, mark: Mark, collection: String? = nil) {
        self.text = text
        self.mark = mark
        self.collection = collection
    }
}

/// An Ansible inventory as its INI or YAML file declares it: groups with their hosts, children
/// and variables, and hosts with their own variables. Ansible's implicit `all` holds every
/// host; what a host's variables come to is `AnsibleVariables`' job.
struct AnsibleInventory {
    struct Group {
        var name: String
        var mark: Mark
        /// Hosts in the order they were first listed under this group.
        var hosts: [String] = []
        var children: [String] = []
        var vars: [String: AnsibleValue] = [:]
    }

    struct Host {
        var name: String
        var mark: Mark
        var vars: [String: AnsibleValue] = [:]
    }

    private(set) var groups: [String: Group] = [:]
    private(set) var hosts: [String: Host] = [:]
    /// Every host in the order Ansible first met it (what `all` lists).
    private(set) var hostOrder: [String] = []

    init() {
        groups["all"] = Group(name: "all", mark: Mark(line: 1, column: 1))
    }

    func group(_ name: String) -> Group? { groups[name] }
    func host(_ name: String) -> Host? { hosts[name] }
    var groupNames: [String] { groups.keys.sorted() }

    /// Declares `name` (a second declaration keeps the first place).
    mutating func declareGroup(_ name: String, at mark: Mark) {
        if groups[name] == nil { groups[name] = Group(name: name, mark: mark) }
    }

    mutating func addHost(_ name: String, to group: String, at mark: Mark) {
        declareGroup(group, at: mark)
        if hosts[name] == nil {
            hosts[name] = Host(name: name, mark: mark)
            hostOrder.append(name)
        }
        if !groups[group]!.hosts.contains(name) { groups[group]!.hosts.append(name) }
    }

    /// A host variable: the last assignment wins, whichever group line carried it (as in Ansible).
    mutating func setHostVariable(_ key: String, _ value: AnsibleValue, on host: String) {
        hosts[host]?.vars[key] = value
    }

    mutating func setGroupVariable(_ key: String, _ value: AnsibleValue, on group: String) {
        groups[group]?.vars[key] = value
    }

    /// `child` under `parent`; refused when it would make a loop, which Ansible refuses too.
    mutating func addChild(_ child: String, to parent: String, at mark: Mark) throws {
        guard child != "all" else { throw ImportProblem(mark, "group 'all' cannot be the child of '\(parent)'") }
        if child == parent || descendants(of: child).contains(parent) {
            throw ImportProblem(mark, "adding group '\(child)' as a child of '\(parent)' makes a loop of groups")
        }
        if !groups[parent]!.children.contains(child) { groups[parent]!.children.append(child) }
    }

    /// Every group below `name`, nearest first.
    func descendants(of name: String) -> [String] {
        var found: [String] = []
        var queue = groups[name]?.children ?? []
        while !queue.isEmpty {
            let next = queue.removeFirst()
            guard !found.contains(next) else { continue }
            found.append(next)
            queue += groups[next]?.children ?? []
        }
        return found
    }

    /// The hosts of `name` as Ansible lists them: its own, then each child's, each host once.
    func hosts(of name: String) -> [String] {
        if name == "all" { return hostOrder }
        var listed: [String] = []
        var seen = Set<String>()
        func visit(_ group: String, depth: Int) {
            guard depth <= groups.count, let entry = groups[group] else { return }
            for host in entry.hosts where seen.insert(host).inserted { listed.append(host) }
            for child in entry.children { visit(child, depth: depth + 1) }
        }
        visit(name, depth: 0)
        return listed
    }
}
