import MusterInventory
import MusterYAML

/// One host of the `etcd` group as a muster host: its key, address and SSH settings, each
/// checked at the place in the Ansible file that set it.
struct EtcdHost {
    var key: String
    var ansibleName: String
    var address: String
    var user: String?
    var port: Int?
    var identity: String?
}

/// The `etcd` group's hosts, in Ansible's order, with their variables resolved.
enum EtcdHosts {
    static let groupName = "etcd"

    /// Ansible's names for the same setting, first one set wins (as its ssh connection reads them).
    static let addressKeys = ["ip", "ansible_host", "ansible_ssh_host"]
    static let userKeys = ["ansible_user", "ansible_ssh_user"]
    static let portKeys = ["ansible_port", "ansible_ssh_port"]
    static let identityKeys = ["ansible_ssh_private_key_file", "ansible_private_key_file"]

    static func resolve(_ inventory: AnsibleInventory) throws -> (group: AnsibleInventory.Group, hosts: [EtcdHost]) {
        guard let group = inventory.group(groupName) else {
            let names = inventory.groupNames.filter { $0 != "all" && $0 != "ungrouped" }
            throw ImportProblem(Mark(line: 1, column: 1),
                                "no group 'etcd': muster imports the hosts of the etcd group (this file has \(names.isEmpty ? "no groups" : names.joined(separator: ", ")))")
        }
        let names = inventory.hosts(of: groupName)
        guard !names.isEmpty else { throw ImportProblem(group.mark, "group 'etcd' has no hosts") }
        let variables = AnsibleVariables(inventory)
        var hosts: [EtcdHost] = []
        var keys: [String: String] = [:]
        var addresses: [String: String] = [:]
        for name in names {
            let host = try resolve(name, inventory.host(name)!, variables.variables(of: name))
            if let other = keys[host.key] {
                throw ImportProblem(mark(of: name, inventory, variables, key: "etcd_member_name"),
                                    "hosts '\(other)' and '\(name)' would both be muster host '\(host.key)'")
            }
            if let other = addresses[host.address] {
                throw ImportProblem(mark(of: name, inventory, variables, keys: addressKeys),
                                    "hosts '\(other)' and '\(name)' have the same address \(host.address)")
            }
            keys[host.key] = name
            addresses[host.address] = name
            hosts.append(host)
        }
        return (group, hosts)
    }

    private static func mark(of host: String, _ inventory: AnsibleInventory, _ variables: AnsibleVariables, key: String) -> Mark {
        mark(of: host, inventory, variables, keys: [key])
    }

    private static func mark(of host: String, _ inventory: AnsibleInventory, _ variables: AnsibleVariables, keys: [String]) -> Mark {
        let vars = variables.variables(of: host)
        return keys.lazy.compactMap { vars[$0]?.mark }.first ?? inventory.host(host)!.mark
    }

    private static func resolve(_ name: String, _ host: AnsibleInventory.Host, _ vars: [String: AnsibleValue]) throws -> EtcdHost {
        guard !name.unicodeScalars.contains(where: isControl) else {
            throw ImportProblem(host.mark, "host name '\(name)' holds a control character")
        }
        if let connection = try text(vars, "ansible_connection"), !["ssh", "smart", "paramiko"].contains(connection.value) {
            throw ImportProblem(connection.mark, "ansible_connection=\(connection.value) of host '\(name)' is not supported: muster reaches every member over SSH")
        }
        for key in ["ansible_password", "ansible_ssh_pass"] {
            if let password = vars[key], password.text != nil {
                throw ImportProblem(password.mark, "\(key) of host '\(name)' is not supported: muster signs in with a key (ssh-agent or an identity file), not a password")
            }
        }
        let key = try text(vars, "etcd_member_name") ?? (value: name, mark: host.mark)
        guard Names.isValidHostName(key.value) else {
            throw ImportProblem(key.mark, "'\(key.value)' cannot be a muster host name (letters, digits, '.', '_' and '-', at most 63, first a letter or digit)")
        }
        let named: (value: String, mark: Mark)? = Names.isIPAddress(name) ? (value: name, mark: host.mark) : nil
        guard let address = try first(vars, addressKeys) ?? named else {
            throw ImportProblem(host.mark, "host '\(name)' has no address: set ip or ansible_host to the member's IP")
        }
        guard Names.isIPAddress(address.value) else {
            throw ImportProblem(address.mark, "address '\(address.value)' of host '\(name)' is not an IPv4 or IPv6 address; etcd listens on IPs only (set ip to the member's IP)")
        }
        var result = EtcdHost(key: key.value, ansibleName: name, address: address.value)
        if let user = try first(vars, userKeys) {
            guard Names.isValidUser(user.value) else {
                throw ImportProblem(user.mark, "SSH user '\(user.value)' of host '\(name)' is not a user name muster takes ([a-z_][a-z0-9_-]*, at most 32)")
            }
            result.user = user.value
        }
        if let port = try first(vars, portKeys) {
            guard let number = Int(port.value), (1...65535).contains(number) else {
                throw ImportProblem(port.mark, "SSH port '\(port.value)' of host '\(name)' is not a port number (1-65535)")
            }
            result.port = number
        }
        if let identity = try first(vars, identityKeys) {
            guard !identity.value.isEmpty, !identity.value.unicodeScalars.contains(where: isControl) else {
                throw ImportProblem(identity.mark, "identity file '\(identity.value)' of host '\(name)' is empty or holds a control character")
            }
            result.identity = identity.value
        }
        return result
    }

    private static func first(_ vars: [String: AnsibleValue], _ keys: [String]) throws -> (value: String, mark: Mark)? {
        for key in keys { if let found = try text(vars, key) { return found } }
        return nil
    }

    /// A variable muster uses: a plain value, not a list, mapping or Jinja2 template (which only
    /// Ansible could evaluate).
    private static func text(_ vars: [String: AnsibleValue], _ key: String) throws -> (value: String, mark: Mark)? {
        guard let value = vars[key] else { return nil }
        if let collection = value.collection {
            throw ImportProblem(value.mark, "\(key) must be one value, found \(collection)")
        }
        guard let text = value.text else { return nil }
        if text.contains("{{") || text.contains("{%") {
            throw ImportProblem(value.mark, "\(key) is a Jinja2 template ('\(text)'); muster cannot evaluate templates: write the value itself")
        }
        return (text, value.mark)
    }
}
