/// The planner tests' inventory: hosts at `addresses`, and cluster `main` (plain http, etcd
/// 3.4.23 pinned, nothing run) listing `members`.
public enum InventoryText {
    public static func main(members: String, addresses: [String: String], bootstrap: String = "static") -> String {
        let hosts = addresses.keys.sorted().map { "  \($0): { address: \(addresses[$0]!) }" }.joined(separator: "\n")
        return """
            ssh: { user: root, identity: ~/.ssh/id_ed25519 }
            member: { binary: /usr/bin/etcd, version: 3.4.23 }
            hosts:
            \(hosts)
            clusters:
              main:
                members: [\(members)]
                tls: false
                bootstrap: \(bootstrap)

            """
    }
}
