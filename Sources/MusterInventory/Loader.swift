import Foundation
import MusterYAML

/// Reads an inventory file and checks it, reporting every problem with its line and column.
public enum InventoryLoader {
    /// `allowUnsafeEtcdKeys`: `--allow-unsafe-etcd-keys`, the operator's explicit word for the
    /// keys `EtcdKeys.unsafe` lists.
    public static func load(path: String, limits: YAMLLimits = .standard, allowUnsafeEtcdKeys: Bool = false) throws -> Inventory {
        // One byte past the limit is enough to refuse: a huge file, or /dev/zero, is never read
        // whole (the parser itself refuses it before libyaml sees a byte).
        let data: Data
        do {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoSuchFile) }
            defer { try? handle.close() }
            data = try handle.read(upToCount: limits.documentBytes + 1) ?? Data()
        } catch {
            throw InventoryError(
                diagnostics: [Diagnostic(file: path, mark: Mark(line: 1, column: 1),
                                         message: "cannot read the inventory file")],
                sourceLines: [:])
        }
        return try parse(data, file: path, limits: limits, allowUnsafeEtcdKeys: allowUnsafeEtcdKeys)
    }

    public static func parse(_ text: String, file: String, limits: YAMLLimits = .standard,
                             allowUnsafeEtcdKeys: Bool = false) throws -> Inventory {
        try parse(Data(text.utf8), file: file, limits: limits, allowUnsafeEtcdKeys: allowUnsafeEtcdKeys)
    }

    /// `data` is the file's bytes: the parser refuses what is not UTF-8 (with its position)
    /// instead of reading a replacement character in its place.
    public static func parse(_ data: Data, file: String, limits: YAMLLimits = .standard,
                             allowUnsafeEtcdKeys: Bool = false) throws -> Inventory {
        let sink = DiagnosticSink(file: file)
        func failure() -> InventoryError {
            let sorted = sink.diagnostics.sorted {
                ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column)
            }
            let lines = SourceLines.lines(numbered: Set(sorted.map(\.mark.line)), in: data)
            return InventoryError(diagnostics: sorted, sourceLines: lines, omitted: sink.omitted)
        }
        let root: Node?
        do {
            root = try YAMLParser.parse(data, limits: limits)
        } catch let error as YAMLSyntaxError {
            sink.error(error.mark, error.message)
            throw failure()
        }
        guard let root else {
            sink.error(Mark(line: 1, column: 1), "the inventory is empty")
            throw failure()
        }
        let inventory = InventoryDecoder(file: file, sink: sink, allowUnsafeEtcdKeys: allowUnsafeEtcdKeys).decode(root)
        if let inventory, sink.isEmpty {
            InventoryChecks(inventory: inventory, sink: sink).run()
        }
        guard let inventory, sink.isEmpty else { throw failure() }
        return inventory
    }
}

/// Turns the YAML tree into the model; type and key errors are reported, not thrown.
struct InventoryDecoder {
    let file: String
    let sink: DiagnosticSink
    var allowUnsafeEtcdKeys = false

    func decode(_ root: Node) -> Inventory? {
        guard let top = MappingReader(root, context: "the inventory", sink: sink) else { return nil }
        top.rejectUnknownKeys(["ssh", "member", "hosts", "dns", "clusters", "paths"])
        let defaults = top.mapping("ssh", context: "ssh").map { ssh(from: $0, base: SSHSettings()) }
            ?? SSHSettings()
        let member = top.mapping("member", context: "member").map { self.member($0) } ?? MemberSettings(mark: root.mark)
        var hosts: [Host] = []
        if let reader = top.mapping("hosts", context: "hosts") {
            for entry in reader.keysInOrder {
                if let host = host(name: entry.name, keyMark: entry.key.mark, node: entry.value, defaults: defaults) {
                    hosts.append(host)
                }
            }
        } else {
            sink.error(top.mark("hosts"), "the inventory needs a 'hosts' mapping")
        }
        let dns = top.mapping("dns", context: "dns").flatMap(dnsSettings)
        var clusters: [Cluster] = []
        if let reader = top.mapping("clusters", context: "clusters") {
            for entry in reader.keysInOrder {
                if let cluster = cluster(name: entry.name, keyMark: entry.key.mark, node: entry.value,
                                         defaultDNSDomain: dns?.domain) {
                    clusters.append(cluster)
                }
            }
        } else {
            sink.error(top.mark("clusters"), "the inventory needs a 'clusters' mapping")
        }
        let paths = top.mapping("paths", context: "paths").map(paths) ?? HostPaths()
        return Inventory(file: file, member: member, hosts: hosts, dns: dns, clusters: clusters, paths: paths)
    }

    private func ssh(from reader: MappingReader, base: SSHSettings) -> SSHSettings {
        reader.rejectUnknownKeys(["user", "port", "identity", "known_hosts", "connect_timeout"])
        var settings = base
        if let user = reader.string("user") {
            if Names.isValidUser(user) { settings.user = user } else {
                sink.error(reader.mark("user"), "'\(user)' is not a valid user name")
            }
        }
        if let port = reader.int("port") {
            if (1...65535).contains(port) { settings.port = port } else {
                sink.error(reader.mark("port"), "SSH port \(port) is out of range 1-65535")
            }
        }
        if let identity = reader.string("identity") { settings.identity = identity }
        if let knownHosts = reader.string("known_hosts") { settings.knownHosts = knownHosts }
        if let timeout = reader.int("connect_timeout") {
            if (1...300).contains(timeout) { settings.connectTimeout = timeout } else {
                sink.error(reader.mark("connect_timeout"), "connect_timeout must be 1-300 seconds")
            }
        }
        return settings
    }

    /// The inventory's `member:`, or with `cluster` a cluster's own (which has no supervisor: a
    /// host has one supervisor whatever runs on it).
    private func member(_ reader: MappingReader, cluster: String? = nil) -> MemberSettings {
        reader.rejectUnknownKeys(cluster == nil ? ["binary", "etcdctl", "version", "supervisor"] : ["binary", "etcdctl", "version"])
        var settings = MemberSettings(mark: reader.node.mark)
        if let choice = supervisorChoice(reader) { settings.supervisor = choice }
        if let binary = reader.string("binary") { settings.binary = binary }
        settings.etcdctl = reader.string("etcdctl")
        if let version = reader.string("version") {
            if Names.isVersion(version) { settings.version = version } else {
                sink.error(reader.mark("version"), "member version '\(version)' is not like 3.4.23")
            }
        }
        return settings
    }

    private func host(name: String, keyMark: Mark, node: Node, defaults: SSHSettings) -> Host? {
        if !Names.isValidHostName(name) {
            sink.error(keyMark, "host name '\(name)' must be letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        guard let reader = MappingReader(node, context: "host '\(name)'", sink: sink) else { return nil }
        reader.rejectUnknownKeys(["address", "fqdn", "ssh", "supervisor"])
        guard let address = reader.string("address") else {
            if reader["address"] == nil { sink.error(node.mark, "host '\(name)' needs an 'address'") }
            return nil
        }
        if !Names.isIPAddress(address) {
            sink.error(reader.mark("address"), "address '\(address)' of host '\(name)' is not an IPv4 or IPv6 address (etcd listens on IPs only)")
        }
        let fqdn = reader.string("fqdn")
        if let fqdn, !Names.isDomainName(fqdn) {
            sink.error(reader.mark("fqdn"), "fqdn '\(fqdn)' of host '\(name)' is not a valid DNS name")
        }
        let ssh = reader.mapping("ssh", context: "ssh of host '\(name)'").map { self.ssh(from: $0, base: defaults) } ?? defaults
        return Host(name: name, address: address, fqdn: fqdn, ssh: ssh, mark: keyMark, supervisor: supervisorChoice(reader))
    }

    private func supervisorChoice(_ reader: MappingReader) -> SupervisorChoice? {
        guard let text = reader.string("supervisor") else { return nil }
        guard let choice = SupervisorChoice(rawValue: text) else {
            sink.error(reader.mark("supervisor"), "supervisor '\(text)' must be one of: \(SupervisorChoice.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return choice
    }

    private func dnsSettings(_ reader: MappingReader) -> DNSSettings? {
        reader.rejectUnknownKeys(["server", "domain", "configure_resolvers"])
        let server = reader.string("server")
        let domain = reader.string("domain")
        if server == nil, reader["server"] == nil { sink.error(reader.node.mark, "dns needs a 'server' (the host that runs dnsmasq)") }
        if domain == nil, reader["domain"] == nil { sink.error(reader.node.mark, "dns needs a 'domain'") }
        if let domain, !Names.isDomainName(domain) {
            sink.error(reader.mark("domain"), "dns domain '\(domain)' is not a valid DNS name")
        }
        guard let server, let domain else { return nil }
        return DNSSettings(server: server, domain: domain,
                           configureResolvers: reader.bool("configure_resolvers") ?? false,
                           mark: reader.mark("server"))
    }

    private func paths(_ reader: MappingReader) -> HostPaths {
        reader.rejectUnknownKeys(["install", "config", "data", "run", "log", "dnsmasq", "systemd"])
        var paths = HostPaths()
        func set(_ key: String, _ keyPath: WritableKeyPath<HostPaths, String>) {
            guard let value = reader.string(key) else { return }
            if Names.isSafeAbsolutePath(value) { paths[keyPath: keyPath] = value } else {
                sink.error(reader.mark(key), "path '\(value)' must be absolute and made of letters, digits, '/', '.', '-', '_'")
            }
        }
        set("install", \.install); set("config", \.config); set("data", \.data); set("run", \.run)
        set("log", \.log); set("dnsmasq", \.dnsmasq); set("systemd", \.systemd)
        refuseRootPathsInEtcdPaths(paths, reader)
        return paths
    }

    /// Root writes binaries, configs, start scripts, pidfiles and units under the root-role paths;
    /// the etcd user owns its data and log directories. A root-role path equal to or under an
    /// etcd-role one would have root write where the etcd user can plant links or swap files.
    private func refuseRootPathsInEtcdPaths(_ paths: HostPaths, _ reader: MappingReader) {
        let rootRole: [(String, String)] = [("install", paths.install), ("config", paths.config), ("run", paths.run),
                                            ("dnsmasq", paths.dnsmasq), ("systemd", paths.systemd)]
        let etcdRole: [(String, String)] = [("data", paths.data), ("log", paths.log)]
        func within(_ path: String, _ base: String) -> Bool {
            let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
            return path == trimmed || path.hasPrefix(trimmed + "/") || trimmed.isEmpty
        }
        for (rootKey, rootPath) in rootRole {
            for (etcdKey, etcdPath) in etcdRole where within(rootPath, etcdPath) {
                let key = reader.string(rootKey) != nil ? rootKey : etcdKey
                sink.error(reader.mark(key), "paths.\(rootKey) (\(rootPath)) lies in paths.\(etcdKey) (\(etcdPath)): the etcd user owns what is under paths.\(etcdKey), and root writes under paths.\(rootKey); give them separate directories")
            }
        }
    }

    private func cluster(name: String, keyMark: Mark, node: Node, defaultDNSDomain: String?) -> Cluster? {
        if !Names.isValidClusterName(name) {
            sink.error(keyMark, "cluster name '\(name)' must be lowercase letters, digits and '-', starting with a letter or digit")
        }
        guard let reader = MappingReader(node, context: "cluster '\(name)'", sink: sink) else { return nil }
        reader.rejectUnknownKeys(["members", "client_port", "peer_port", "token", "tls", "client_listen",
                                  "etcd", "bootstrap", "member"])
        var cluster = Cluster(name: name, members: [], token: name, mark: keyMark, bootstrapMark: keyMark)
        if let member = reader.mapping("member", context: "member of cluster '\(name)'") {
            cluster.member = self.member(member, cluster: name)
        }
        if let members = reader.stringList("members") {
            cluster.members = members.map(\.0)
            var seen = Set<String>()
            for (member, mark) in members where !seen.insert(member).inserted {
                sink.error(mark, "host '\(member)' is listed twice in cluster '\(name)'")
            }
            // Only an empty list: items refused one by one have been reported already.
            if case .sequence(let items)? = reader["members"]?.value, items.isEmpty {
                sink.error(reader.mark("members"), "cluster '\(name)' has no members")
            }
        } else if reader["members"] == nil {
            sink.error(keyMark, "cluster '\(name)' needs 'members'")
        }
        for (key, keyPath) in [("client_port", \Cluster.clientPort), ("peer_port", \Cluster.peerPort)] {
            if let port = reader.int(key) {
                if (1...65535).contains(port) { cluster[keyPath: keyPath] = port } else {
                    sink.error(reader.mark(key), "\(key) \(port) is out of range 1-65535")
                }
            }
        }
        if cluster.clientPort == cluster.peerPort {
            sink.error(reader.mark("peer_port"), "cluster '\(name)' uses port \(cluster.peerPort) for both clients and peers")
        }
        if let token = reader.string("token") {
            if Names.isToken(token) { cluster.token = token } else {
                sink.error(reader.mark("token"), "token '\(token)' must be letters, digits, '-', '_' or '.'")
            }
        }
        if let tls = reader.bool("tls") { cluster.tls = tls }
        if let listen = reader.string("client_listen") {
            if let value = ClientListen(rawValue: listen) { cluster.clientListen = value } else {
                sink.error(reader.mark("client_listen"), "client_listen must be 'address' or 'loopback', found '\(listen)'")
            }
        }
        if let etcd = reader.mapping("etcd", context: "etcd options of cluster '\(name)'") {
            (cluster.etcdOptions, cluster.etcdOptionMarks) = etcdOptions(etcd)
        }
        if let bootstrapNode = reader["bootstrap"] {
            cluster.bootstrapMark = bootstrapNode.mark
            if let bootstrap = bootstrap(bootstrapNode, cluster: name, defaultDNSDomain: defaultDNSDomain,
                                         discoveryOptions: &cluster.discoveryOptions) {
                cluster.bootstrap = bootstrap
            }
        }
        return cluster
    }

    private func etcdOptions(_ reader: MappingReader) -> (options: [EtcdOption], marks: [String: Mark]) {
        var options: [EtcdOption] = []
        var marks: [String: Mark] = [:]
        for entry in reader.keysInOrder {
            if EtcdKeys.managedByMuster.contains(entry.name) {
                sink.error(entry.key.mark, "etcd key '\(entry.name)' is set by muster from the inventory; remove it")
                continue
            }
            if let danger = EtcdKeys.unsafe[entry.name], !allowUnsafeEtcdKeys {
                sink.error(entry.key.mark, "etcd key '\(entry.name)' is unsafe: \(danger); muster sets it only with --allow-unsafe-etcd-keys")
                continue
            }
            guard EtcdKeyTable.everyLine.contains(entry.name) else {
                let hint = closest(to: entry.name, in: EtcdKeyTable.everyLine).map { "; did you mean '\($0)'?" } ?? ""
                sink.error(entry.key.mark, "'\(entry.name)' is not an etcd configuration key\(hint)")
                continue
            }
            guard case .scalar(let text, let style) = entry.value.value else {
                sink.error(entry.value.mark, "etcd key '\(entry.name)' must be a single value, found \(entry.value.kindName)")
                continue
            }
            // Free text otherwise: conf.yml gets it through YAMLEmitter, quoted as YAML needs.
            if reader.rejectControlCharacters(text, at: entry.value.mark, what: "etcd key '\(entry.name)'") { continue }
            options.append(EtcdOption(key: entry.name, value: ScalarType.infer(text, style: style, tag: entry.value.tag)))
            marks[entry.name] = entry.key.mark
        }
        return (options, marks)
    }
}
