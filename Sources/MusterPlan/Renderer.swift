import MusterInventory
import MusterYAML

/// Renders every file a plan puts on hosts, from `templates/`.
public struct Renderer {
    let templates: TemplateSet
    let inventory: Inventory
    /// Asked once per TLS member; computed once.
    private let discoveryBackends: Set<String>

    public init(templates: TemplateSet, inventory: Inventory) {
        self.templates = templates
        self.inventory = inventory
        discoveryBackends = inventory.discoveryBackends
    }

    /// All files for `clusters`, each YAML one parsed back with libyaml before it is returned.
    public func files(for clusters: [ClusterPlan]) throws -> [RenderedFile] {
        var files: [RenderedFile] = []
        for cluster in clusters {
            guard let source = inventory.cluster(named: cluster.name) else { continue }
            for member in cluster.members {
                let conf = templates.render("conf.yml", confContext(cluster, member, source))
                try checkYAML(conf, host: member.host, path: member.paths.config, expectedName: member.name)
                files.append(RenderedFile(host: member.host, path: member.paths.config, contents: conf, mode: 0o644))
                let runAs = "etcd"
                let common: [String: Any] = [
                    "name": member.name, "cluster": cluster.name, "binaryPath": member.paths.binary,
                    "configPath": member.paths.config, "runAs": runAs,
                ]
                files.append(RenderedFile(host: member.host, path: member.paths.unit,
                                          contents: templates.render("etcd.service", common), mode: 0o644))
                var script = common
                script["pidfile"] = member.paths.pidfile
                script["runDir"] = member.paths.runDir
                script["logFile"] = member.paths.log
                script["installedPrefix"] = inventory.paths.install + "/etcd-"
                script["launcher"] = "setpriv --reuid=\(runAs) --regid=\(runAs) --init-groups "
                files.append(RenderedFile(host: member.host, path: member.paths.startScript,
                                          contents: templates.render("start-member.sh", script), mode: 0o755))
            }
            if let dns = cluster.dns {
                let context: [String: Any] = [
                    "cluster": cluster.name, "domain": dns.domain,
                    "serverRecords": dns.serverRecords.map(recordContext),
                    "clientRecords": dns.clientRecords.map(recordContext),
                    "hostRecords": dns.hostRecords.map { ["fqdn": $0.fqdn, "address": $0.address] },
                ]
                files.append(RenderedFile(host: dns.serverHost, path: dns.configPath,
                                          contents: templates.render("dnsmasq.conf", context), mode: 0o644))
            }
        }
        return files
    }

    private func recordContext(_ record: SRVRecord) -> [String: Any] {
        ["service": record.service, "domain": record.domain, "target": record.target, "port": record.port]
    }

    private func confContext(_ cluster: ClusterPlan, _ member: MemberPlan, _ source: Cluster) -> [String: Any] {
        var context: [String: Any] = [
            "name": member.name, "cluster": cluster.name, "configPath": member.paths.config,
            "dataDir": member.paths.data,
            "listenPeerURLs": member.listenPeerURLs.joined(separator: ","),
            "listenClientURLs": member.listenClientURLs.joined(separator: ","),
            "advertisePeerURLs": member.peerURL,
            "advertiseClientURLs": member.clientURLs.joined(separator: ","),
            "enableV2": cluster.enableV2,
        ]
        context["initialCluster"] = member.initialCluster
        context["initialClusterState"] = member.join == nil ? "new" : "existing"
        switch cluster.bootstrap {
        case _ where member.join != nil:
            break  // a joining member finds its peers by its initial-cluster alone
        case .staticCluster(let token):
            context["initialClusterToken"] = token
        case .dns(let dns, let token):
            context["discoverySRV"] = dns.domain
            if !dns.serviceName.isEmpty { context["discoverySRVName"] = dns.serviceName }
            context["initialClusterToken"] = token
        case .discovery(let discovery):
            context["discovery"] = discovery.url
            if let proxy = discovery.proxy { context["discoveryProxy"] = proxy }
        }
        if cluster.tls {
            let paths = member.paths
            context["tls"] = true
            context["caCert"] = paths.caCert
            context["peerCACert"] = paths.peerCACert
            context["serverCert"] = paths.serverCert
            context["serverKey"] = paths.serverKey
            context["peerCert"] = paths.peerCert
            context["peerKey"] = paths.peerKey
            // etcd's v2 discovery client presents no client certificate to a backend.
            context["clientCertAuth"] = isBackend(cluster) ? "false" : "true"
        }
        context["options"] = source.etcdOptions.filter { !($0.key == "enable-v2" && cluster.enableV2) }.map { option in
            ["key": option.key, "value": yamlValue(option.value)]
        }
        return context
    }

    private func isBackend(_ cluster: ClusterPlan) -> Bool {
        discoveryBackends.contains(cluster.name)
    }

    private func yamlValue(_ value: ScalarType) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return String(number)
        case .float(let number): return String(number)
        case .string(let text): return YAMLEmitter.scalar(text)
        }
    }

    private func checkYAML(_ text: String, host: String, path: String, expectedName: String) throws {
        do {
            let node = try YAMLParser.parse(text)
            guard case .mapping(let pairs)? = node?.value,
                  pairs.contains(where: { $0.key.scalarText == "name" && $0.value.scalarText == expectedName }) else {
                throw TemplateError(description: "rendered \(path) for host \(host) does not hold 'name: \(expectedName)'")
            }
        } catch let error as YAMLSyntaxError {
            throw TemplateError(description: "rendered \(path) for host \(host) is not valid YAML: \(error)")
        }
    }
}
