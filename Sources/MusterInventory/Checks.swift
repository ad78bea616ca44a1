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
            if case .cluster(let backend) = source {
                if let backendCluster = inventory.cluster(named: backend), backendCluster.tls {
                    sink.error(cluster.bootstrapMark, "discovery cluster '\(backend)' has TLS on, but etcd's v2 discovery client trusts only the system's roots and presents no client certificate: set 'tls: false' on '\(backend)' (cluster '\(cluster.name)' itself may keep TLS)")
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
            checkV2Discovery(cluster, profile: profile, versions: memberVersions, sink: sink)
        }
        if !sink.diagnostics.isEmpty {
            throw InventoryError(diagnostics: sink.diagnostics, sourceLines: (try? Data(contentsOf: URL(fileURLWithPath: file))).map {
                SourceLines.lines(numbered: Set(sink.diagnostics.map(\.mark.line)), in: $0)
            } ?? [:])
        }
    }

    /// etcd's v2 discovery (`discovery: URL`) needs members that speak it (3.7 removed it, and
    /// starts a cluster of one from a conf.yml whose `discovery:` it ignores) and, through a
    /// cluster of this inventory, a backend that serves the v2 keys API (3.4/3.5).
    private func checkV2Discovery(_ cluster: Cluster, profile: EtcdVersionProfile, versions: [String: String], sink: DiagnosticSink) {
        guard case .discovery(let source, _, _) = cluster.bootstrap else { return }
        if !profile.speaks(.v2) {
            sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' bootstraps by etcd's v2 discovery, which etcd \(profile.line) removed (its members run \(profile.version)): use static or DNS SRV bootstrap, or members of 3.6 or older")
        }
        if case .cluster(let backend) = source, let version = versions[backend],
           let backendProfile = try? EtcdVersionProfile(version), !backendProfile.servesV2API {
            sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' discovers through cluster '\(backend)', whose members run etcd \(version), which serves no v2 keys API (removed in 3.6): give '\(backend)' a 3.5 binary (clusters.\(backend).member)")
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
