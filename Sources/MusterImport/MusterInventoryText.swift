import MusterYAML

/// The muster inventory an import writes: a header saying where it came from and which of
/// muster's defaults stand in for what Ansible does not say, the hosts, and one cluster.
enum MusterInventoryText {
    static let cluster = "etcd"

    static func render(_ hosts: [EtcdHost], source: String) -> String {
        let shownSource = String(String.UnicodeScalarView(source.unicodeScalars.map { isControl($0) ? "?" : $0 }))
        var lines = [
            "# Imported by `muster import ansible` from \(shownSource):",
            "# the \(hosts.count) host\(hosts.count == 1 ? "" : "s") of its group 'etcd', as one cluster.",
            "# Ansible does not say how etcd runs; these are muster's defaults, written out to change:",
            "# this machine's /usr/bin/etcd shipped to every member (its version from `etcd --version`),",
            "# static bootstrap, TLS with muster's own CA, client port 2379, peer port 2380. SSH settings",
            "# Ansible leaves unset are muster's (user root, port 22, keys from ssh-agent).",
            "member:",
            "  binary: /usr/bin/etcd",
            "hosts:",
        ]
        for host in hosts {
            var line = "  \(YAMLEmitter.scalar(host.key)):"
            if host.key != host.ansibleName { line += "   # Ansible host \(host.ansibleName)" }
            lines.append(line)
            lines.append("    address: \(YAMLEmitter.scalar(host.address))")
            var ssh: [String] = []
            if let user = host.user { ssh.append("      user: \(YAMLEmitter.scalar(user))") }
            if let port = host.port { ssh.append("      port: \(port)") }
            if let identity = host.identity { ssh.append("      identity: \(YAMLEmitter.scalar(identity))") }
            if !ssh.isEmpty { lines += ["    ssh:"] + ssh }
        }
        lines += [
            "clusters:",
            "  \(cluster):",
            "    members: [\(hosts.map { YAMLEmitter.scalar($0.key) }.joined(separator: ", "))]",
            "    client_port: 2379",
            "    peer_port: 2380",
            "    tls: true",
            "    bootstrap: static",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
