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
        checkBootstrap(cluster)
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
            checkBootstrap(cluster, profile: profile, version: version, sink: sink)
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
