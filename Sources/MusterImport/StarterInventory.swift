import MusterYAML

/// The commented inventory `muster init` writes: every key an operator changes first, with what it
/// does beside it, for one of the three bootstrap mechanisms. Pure: the command checks the text
/// with the inventory loader before it writes it.
public enum StarterInventory {
    public enum Bootstrap: String, CaseIterable, Sendable {
        case staticCluster = "static", discovery, dns
    }

    /// Documentation addresses (RFC 5737 TEST-NET-1): an example that is never anybody's host.
    public static let exampleAddresses = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    static let domain = "etcd.internal"

    public static func render(addresses: [String], bootstrap: Bootstrap) -> String {
        let example = addresses.isEmpty
        let addresses = example ? exampleAddresses : addresses
        let names = addresses.indices.map { "etcd\($0 + 1)" }
        var lines = [
            "# A muster inventory, written by `muster init`. `muster render FILE` shows what it makes;",
            "# `muster up FILE` brings it up. The manual: docs/inventory.md.",
        ]
        if example {
            lines.append("# The addresses are documentation examples (192.0.2.0/24): put your hosts' in their place.")
        }
        lines += [
            "ssh:                          # how muster reaches every host; a host's own ssh: overrides",
            "  user: root                  # another user works through passwordless sudo",
            "  port: 22",
            "  identity: ~/.ssh/id_ed25519 # ssh-agent is tried first when SSH_AUTH_SOCK is set",
            "  known_hosts: ~/.ssh/known_hosts   # host keys are checked; --accept-new-host-keys records new ones",
            "member:",
            "  binary: /usr/bin/etcd       # etcd on this machine, shipped to every member",
            "  # version: 3.5.16           # render without asking the binary its version",
            "  supervisor: auto            # systemd where it runs, else a plain process",
            "hosts:",
        ]
        for (name, address) in zip(names, addresses) {
            lines.append("  \(name): { address: \(YAMLEmitter.scalar(address)) }")
        }
        switch bootstrap {
        case .staticCluster:
            lines += cluster(named: "main", members: names, bootstrap: "static")
        case .discovery:
            lines += [
                "clusters:",
                "  # The discovery backend: a small cluster of your own whose v2 keys API holds the token",
                "  # (etcd's v2 discovery client presents no client certificate, so it runs plain http).",
                "  disco:",
                "    members: [\(names[0])]",
                "    client_port: 2381",
                "    peer_port: 2382",
                "    tls: false",
                "    bootstrap: static",
            ]
            lines += cluster(named: "main", members: names,
                             bootstrap: "{ discovery: { cluster: disco, size: \(names.count) } }   # muster makes the token",
                             header: false)
        case .dns:
            lines.insert(contentsOf: [
                "dns:                          # dnsmasq on one host serves the SRV records",
                "  server: \(names[0])",
                "  domain: \(domain)           # members are found as HOST.\(domain)",
                "  configure_resolvers: true   # put that server first in the members' resolv.conf",
            ], at: lines.firstIndex(of: "hosts:")!)
            lines += cluster(named: "main", members: names, bootstrap: "{ dns: { domain: \(domain) } }")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func cluster(named name: String, members: [String], bootstrap: String, header: Bool = true) -> [String] {
        (header ? ["clusters:"] : []) + [
            "  \(name):",
            "    members: [\(members.joined(separator: ", "))]   # an odd count: 3 or 5",
            "    client_port: 2379",
            "    peer_port: 2380",
            "    tls: true                  # muster's own CA for clients and peers",
            "    # etcd: { quota-backend-bytes: 8589934592 }   # more etcd keys, checked against etcd's own",
            "    bootstrap: \(bootstrap)",
        ]
    }
}
