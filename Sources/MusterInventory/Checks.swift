import Foundation
import MusterYAML

/// Cross-references between hosts, clusters and DNS, after every value has its type.
struct InventoryChecks {
    let inventory: Inventory
    let sink: DiagnosticSink

    func run() {
        checkHosts()
        checkDNS()
        for cluster in inventory.clusters { checkCluster(cluster) }
        checkPortClashes()
        checkDiscoveryCycles()
    }

    private func checkHosts() {
        var byAddress: [String: String] = [:]
        for host in inventory.hosts {
            if let other = byAddress[host.address] {
                sink.error(host.mark, "host '\(host.name)' has the same address \(host.address) as host '\(other)'")
            } else {
                byAddress[host.address] = host.name
            }
        }
    }

    private func checkDNS() {
        guard let dns = inventory.dns else { return }
        if inventory.host(named: dns.server) == nil {
            sink.error(dns.mark, "dns server '\(dns.server)' is not a host of this inventory")
        }
    }

    private func checkCluster(_ cluster: Cluster) {
        for name in cluster.members where inventory.host(named: name) == nil {
            sink.error(cluster.mark, "cluster '\(cluster.name)' names host '\(name)', which is not defined under 'hosts'")
        }
        switch cluster.bootstrap {
        case .staticCluster:
            break
        case .discovery(let source, let size, _):
            // A size smaller than `members:` matters only until the cluster has formed, which
            // the state dir knows: PlanBuilder checks it.
            if size < 1 || size > 99 {
                sink.error(cluster.bootstrapMark, "discovery size \(size) must be between 1 and 99")
            }
            // Whether the backend may keep TLS depends on the protocol, so on the members'
            // version: `check(memberVersion:)`.
            if case .cluster(let backend) = source {
                if let backendCluster = inventory.cluster(named: backend), backendCluster.clientListen == .loopback {
                    sink.error(cluster.bootstrapMark, "discovery cluster '\(backend)' serves clients on 127.0.0.1 only (client_listen: loopback): the members of '\(cluster.name)' could not reach it; give '\(backend)' client_listen: address")
                }
                if backend == cluster.name {
                    sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' cannot be its own discovery backend")
                } else if inventory.cluster(named: backend) == nil {
                    sink.error(cluster.bootstrapMark, "discovery cluster '\(backend)' is not a cluster of this inventory")
                }
            }
        case .dns(let domain, _):
            guard let dns = inventory.dns else {
                sink.error(cluster.bootstrapMark, "DNS bootstrap of cluster '\(cluster.name)' needs a top-level 'dns' section naming the host that runs dnsmasq")
                return
            }
            _ = dns
            for name in cluster.members {
                guard let host = inventory.host(named: name) else { continue }
                if let fqdn = host.fqdn, !fqdn.hasSuffix("." + domain) {
                    sink.error(host.mark, "fqdn '\(fqdn)' of host '\(name)' is not under the DNS domain '\(domain)' of cluster '\(cluster.name)'")
                }
            }
        }
    }

    /// Two clusters may share a host, but not a port on it.
    private func checkPortClashes() {
        var used: [String: [Int: String]] = [:]
        for cluster in inventory.clusters {
            for name in cluster.members {
                for (port, role) in [(cluster.clientPort, "client"), (cluster.peerPort, "peer")] {
                    if let other = used[name]?[port] {
                        sink.error(cluster.mark, "\(role) port \(port) of cluster '\(cluster.name)' on host '\(name)' is already used by \(other)")
                    } else {
                        used[name, default: [:]][port] = "the \(role) port of cluster '\(cluster.name)'"
                    }
                }
            }
        }
    }

    private func checkDiscoveryCycles() {
        for cluster in inventory.clusters {
            var seen: [String] = [cluster.name]
            var current = cluster
            while case .discovery(.cluster(let backend), _, _) = current.bootstrap,
                  let next = inventory.cluster(named: backend) {
                if seen.contains(backend) {
                    if backend == cluster.name, seen.count > 1 {
                        sink.error(cluster.bootstrapMark, "clusters form a discovery cycle: \((seen + [backend]).joined(separator: " -> "))")
                    }
                    break
                }
                seen.append(backend)
                current = next
            }
        }
    }
}

extension Inventory {
    /// Checks that need each cluster's member version (asked of `etcd --version`, or
    /// `member.version`, before planning): the line must be one muster knows, and every `etcd:`
    /// key one that line reads, refused at its place otherwise, naming what replaced it.
    public func check(memberVersions: [String: String]) throws {
        let sink = DiagnosticSink(file: file)
        for cluster in clusters {
            guard let version = memberVersions[cluster.name] else { continue }
            let profile: EtcdVersionProfile
            do { profile = try EtcdVersionProfile(version) } catch {
                sink.error((cluster.member ?? member).mark, "cluster '\(cluster.name)': \(error)")
                continue
            }
            if case .dns = cluster.bootstrap, !cluster.tls, profile.dnsSRVNeedsTLS {
                sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' bootstraps by DNS SRV without TLS, but etcd \(version) ignores plain _etcd-server._tcp records (etcd issue 11321, fixed in 3.5): set 'tls: true' or use etcd 3.5")
            }
            checkKeys(cluster, profile: profile, version: version, sink: sink)
        }
        checkDiscoveryProtocols(versionOf: { memberVersions[$0.name] ?? "" }, sink: sink)
        if !sink.diagnostics.isEmpty {
            throw InventoryError(diagnostics: sink.diagnostics, sourceLines: (try? Data(contentsOf: URL(fileURLWithPath: file))).map {
                SourceLines.lines(numbered: Set(sink.diagnostics.map(\.mark.line)), in: $0)
            } ?? [:])
        }
    }

    /// The same with one version for every cluster.
    public func check(memberVersion: String) throws {
        try check(memberVersions: Dictionary(clusters.map { ($0.name, memberVersion) }, uniquingKeysWith: { first, _ in first }))
    }

    private func checkKeys(_ cluster: Cluster, profile: EtcdVersionProfile, version: String, sink: DiagnosticSink) {
        let keys = Set(cluster.etcdOptions.map(\.key))
        for option in cluster.etcdOptions {
            let mark = cluster.etcdOptionMarks[option.key] ?? cluster.mark
            let prefix = "etcd key '\(option.key)' of cluster '\(cluster.name)'"
            switch profile.verdict(forKey: option.key) {
            case .accepted:
                break
            case .notYet(let since):
                sink.error(mark, "\(prefix) is a key of etcd \(since) and later; its members run etcd \(version), which does not read it")
            case .removed(let replacement):
                sink.error(mark, "\(prefix) is gone in etcd \(profile.line) (its members run \(version)), which would ignore it in conf.yml without a word; replaced by \(replacement)")
            case .renamed(let new):
                if keys.contains(new) {
                    sink.error(mark, "\(prefix) is the old name of '\(new)', which is set too: keep '\(new)' only")
                }
            case .featureGate(let gate):
                guard case .bool = option.value else {
                    sink.error(mark, "\(prefix) must be true or false: etcd \(profile.line) reads it as feature gate \(gate)")
                    break
                }
                if case .string(let gates)? = cluster.etcdOptions.first(where: { $0.key == "feature-gates" })?.value,
                   gates.split(separator: ",").contains(where: { $0.split(separator: "=").first.map(String.init) == gate }) {
                    sink.error(mark, "\(prefix) is feature gate \(gate), which feature-gates sets too: keep one")
                }
            }
        }
    }
}

extension Inventory {
    /// Each discovery cluster's protocol against its members' version and its backend:
    /// `versionOf` gives the etcd version a cluster's members run.
    func checkDiscoveryProtocols(versionOf: (Cluster) -> String, sink: DiagnosticSink) {
        for cluster in clusters {
            guard case .discovery(let source, _, _) = cluster.bootstrap else { continue }
            let options = cluster.discoveryOptions ?? DiscoveryOptions(protocolMark: cluster.bootstrapMark)
            let version = versionOf(cluster)
            switch DiscoveryProtocol.choose(memberVersion: version, forced: options.forcedProtocol) {
            case .failure(let refusal):
                sink.error(options.protocolMark, "cluster '\(cluster.name)' cannot use \(options.forcedProtocol?.rawValue ?? "") discovery: \(refusal.reason); \(refusal.wayOn)")
            case .success(.v3):
                switch source {
                case .url, .service:
                    sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v3 discovery (its members run etcd \(version)), which speaks to an etcd's v3 API, not to a v2 keys URL or a discovery service: name an inventory cluster ('cluster:') or an etcd's client URLs ('endpoints:')\(DiscoveryProtocol.choose(memberVersion: version, forced: .v2).isV2 ? ", or force 'protocol: v2'" : "")")
                case .cluster(let backend):
                    // The client certificate of the backend's CA rides with the cluster's own files.
                    if self.cluster(named: backend)?.tls == true, !cluster.tls {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' discovers through '\(backend)', which has TLS on: its members present a client certificate of '\(backend)''s CA, which muster ships with their own; set 'tls: true' on '\(cluster.name)' too")
                    }
                case .endpoints(let urls):
                    if urls.contains(where: { $0.hasPrefix("https://") }), options.tls == nil {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' discovers through https endpoints: give 'tls: { ca, cert, key }' (the backend's CA, and a client certificate it accepts)")
                    } else if options.tls != nil, !cluster.tls {
                        sink.error(options.tls?.mark ?? options.protocolMark, "cluster '\(cluster.name)' ships discovery tls files with its own certificates: set 'tls: true' on '\(cluster.name)' too")
                    }
                }
            case .success(.v2):
                switch source {
                case .endpoints:
                    sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v2 discovery (its members run etcd \(version)), but 'endpoints' names a v3 discovery backend: v2 discovery needs 'cluster', 'url' or 'service'")
                case .cluster(let backend):
                    guard let backendCluster = self.cluster(named: backend) else { break }
                    if backendCluster.tls {
                        sink.error(options.protocolMark, "discovery cluster '\(backend)' has TLS on, but etcd's v2 discovery client trusts only the system's roots and presents no client certificate: set 'tls: false' on '\(backend)' (cluster '\(cluster.name)' itself may keep TLS)")
                    }
                    let backendVersion = versionOf(backendCluster)
                    if !DiscoveryProtocol.servesV2Keys(version: backendVersion) {
                        sink.error(options.protocolMark, "cluster '\(cluster.name)' uses v2 discovery through cluster '\(backend)', but '\(backend)' runs etcd \(backendVersion), which serves no v2 keys API (3.6 removed enable-v2): run '\(backend)' on 3.5, or '\(cluster.name)' on 3.6 or later with v3 discovery")
                    }
                case .url, .service:
                    break
                }
            }
        }
    }
}

private extension Result where Success == DiscoveryProtocol {
    var isV2: Bool { if case .success(.v2) = self { return true }; return false }
}
