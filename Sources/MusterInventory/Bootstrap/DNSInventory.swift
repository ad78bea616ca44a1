import MusterYAML

extension InventoryDecoder {
    /// `bootstrap: { dns: ... }` (or `dns: {}`/`dns:` for the inventory's domain).
    func dnsBootstrap(_ node: Node, cluster: String, defaultDNSDomain: String?) -> Bootstrap? {
        let dns: MappingReader?
        if case .scalar(let text, .plain) = node.value, text.isEmpty || text == "~" {
            dns = nil
        } else {
            dns = MappingReader(node, context: "dns bootstrap of cluster '\(cluster)'", sink: sink)
            if dns == nil { return nil }
        }
        dns?.rejectUnknownKeys(["domain", "service_name"])
        let domain = dns?.string("domain") ?? defaultDNSDomain
        guard let domain else {
            sink.error(node.mark, "DNS bootstrap of cluster '\(cluster)' needs a domain, and the inventory has no 'dns' section")
            return nil
        }
        if !Names.isDomainName(domain) {
            sink.error(dns?.mark("domain") ?? node.mark, "DNS domain '\(domain)' is not a valid DNS name")
        }
        let serviceName = dns?.string("service_name") ?? ""
        if !serviceName.isEmpty, !Names.isToken(serviceName) {
            sink.error(dns?.mark("service_name") ?? node.mark, "service_name '\(serviceName)' must be letters, digits, '-' or '_'")
        }
        return .dns(domain: domain, serviceName: serviceName)
    }
}

extension InventoryChecks {
    func checkDNSBootstrap(_ cluster: Cluster, domain: String) {
        guard inventory.dns != nil else {
            sink.error(cluster.bootstrapMark, "DNS bootstrap of cluster '\(cluster.name)' needs a top-level 'dns' section naming the host that runs dnsmasq")
            return
        }
        for name in cluster.members {
            guard let host = inventory.host(named: name) else { continue }
            if let fqdn = host.fqdn, !fqdn.hasSuffix("." + domain) {
                sink.error(host.mark, "fqdn '\(fqdn)' of host '\(name)' is not under the DNS domain '\(domain)' of cluster '\(cluster.name)'")
            }
        }
    }
}

extension Inventory {
    func checkDNSBootstrap(_ cluster: Cluster, profile: EtcdVersionProfile, version: String, sink: DiagnosticSink) {
        if !cluster.tls, profile.dnsSRVNeedsTLS {
            sink.error(cluster.bootstrapMark, "cluster '\(cluster.name)' bootstraps by DNS SRV without TLS, but etcd \(version) ignores plain _etcd-server._tcp records (etcd issue 11321, fixed in 3.5): set 'tls: true' or use etcd 3.5")
        }
    }
}
