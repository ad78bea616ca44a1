import MusterInventory
import MusterYAML

/// Renders every file a plan puts on hosts, from `templates/`.
public struct Renderer: Sendable {
    let templates: TemplateSet
    let inventory: Inventory

    public init(templates: TemplateSet, inventory: Inventory) {
        self.templates = templates
        self.inventory = inventory
    }

    /// All files for `clusters`, each YAML one parsed back with libyaml before it is returned.
    public func files(for clusters: [ClusterPlan]) throws -> [RenderedFile] {
        var files: [RenderedFile] = []
        for cluster in clusters { files += try self.files(for: cluster) }
        return files
    }

    /// The files of one cluster, in the order `files(for:)` lists them: per member its
    /// conf.yml, unit and start script, then the cluster's dnsmasq config.
    public func files(for cluster: ClusterPlan) throws -> [RenderedFile] {
        guard let source = inventory.cluster(named: cluster.name) else { return [] }
        var files: [RenderedFile] = []
        files.reserveCapacity(cluster.members.count * 3 + 1)
        for member in cluster.members {
            let conf = templates.confYML.render(confContext(cluster, member, source))
            try checkYAML(conf, host: member.host, path: member.paths.config, expectedName: member.name)
            // It may hold a discovery token (a capability to join the cluster): root's, read by
            // the etcd group, and so carried on the apply command's stdin, never in its argv.
            files.append(RenderedFile(host: member.host, path: member.paths.config, contents: conf, mode: 0o640, owner: "root:etcd"))
            let runAs = "etcd"
            var context: TemplateContext = [
                "name": .text(member.name), "cluster": .text(cluster.name), "binaryPath": .text(member.paths.binary),
                "configPath": .text(member.paths.config), "runAs": .text(runAs),
            ]
            files.append(RenderedFile(host: member.host, path: member.paths.unit,
                                      contents: templates.etcdService.render(context), mode: 0o644))
            context["pidfile"] = .text(member.paths.pidfile)
            context["runDir"] = .text(member.paths.runDir)
            context["logFile"] = .text(member.paths.log)
            context["installedPrefix"] = .text(inventory.paths.install + "/etcd-")
            context["launcher"] = .text("setpriv --reuid=\(runAs) --regid=\(runAs) --init-groups ")
            files.append(RenderedFile(host: member.host, path: member.paths.startScript,
                                      contents: templates.startMember.render(context), mode: 0o755))
        }
        if let dns = cluster.dns {
            let context: TemplateContext = [
                "cluster": .text(cluster.name), "domain": .text(dns.domain),
                "serverRecords": .list(dns.serverRecords.map(recordContext)),
                "clientRecords": .list(dns.clientRecords.map(recordContext)),
                "hostRecords": .list(dns.hostRecords.map { ["fqdn": .text($0.fqdn), "address": .text($0.address)] }),
            ]
            files.append(RenderedFile(host: dns.serverHost, path: dns.configPath,
                                      contents: templates.dnsmasqConf.render(context), mode: 0o644))
        }
        return files
    }

    private func recordContext(_ record: SRVRecord) -> TemplateContext {
        ["service": .text(record.service), "domain": .text(record.domain), "target": .text(record.target),
         "port": .text(String(record.port))]
    }

    private func confContext(_ cluster: ClusterPlan, _ member: MemberPlan, _ source: Cluster) -> TemplateContext {
        var context: TemplateContext = [
            "name": .text(member.name), "cluster": .text(cluster.name), "configPath": .text(member.paths.config),
            "dataDir": .text(member.paths.data),
            "listenPeerURLs": .text(member.listenPeerURLs.joined(separator: ",")),
            "listenClientURLs": .text(member.listenClientURLs.joined(separator: ",")),
            "advertisePeerURLs": .text(member.peerURL),
            "advertiseClientURLs": .text(member.clientURLs.joined(separator: ",")),
            "enableV2": .flag(cluster.enableV2),
        ]
        context["initialCluster"] = member.initialCluster.map(TemplateValue.text)
        context["initialClusterState"] = .text(member.join == nil ? "new" : "existing")
        if member.join != nil {
            // A joining member finds its peers by its initial-cluster alone.
        } else if let restoreToken = cluster.restoreToken {
            // Founded by a restore: the initial-cluster and token its data was restored with
            // (a discovery or SRV key beside initial-cluster is a conflict etcd refuses).
            context["initialClusterToken"] = .text(restoreToken)
        } else {
            cluster.bootstrap.addFoundingKeys(to: &context, member: member)
        }
        if cluster.tls {
            let paths = member.paths
            context["tls"] = .flag(true)
            // etcd 3.5+: its gateway presents a certificate of its own, which only this member's
            // client port trusts, so no member's server key is a client credential.
            let ownGateway = (try? EtcdVersionProfile(cluster.memberVersion))?.gatewayTakesItsOwnClientCertificate ?? false
            context["caCert"] = .text(ownGateway ? paths.clientPortTrust : paths.caCert)
            if ownGateway {
                context["gatewayCert"] = .text(paths.gatewayCert)
                context["gatewayKey"] = .text(paths.gatewayKey)
            }
            context["peerCACert"] = .text(paths.peerCACert)
            context["serverCert"] = .text(paths.serverCert)
            context["serverKey"] = .text(paths.serverKey)
            context["peerCert"] = .text(paths.peerCert)
            context["peerKey"] = .text(paths.peerKey)
            // etcd's v2 discovery client presents no client certificate to a backend.
            context["clientCertAuth"] = .text(isBackend(cluster) ? "false" : "true")
        }
        // Keys as the members' line reads them (renamed, feature gates); a line muster does not
        // know was refused before planning.
        let options = (try? EtcdVersionProfile(cluster.memberVersion).rendered(source.etcdOptions)) ?? source.etcdOptions
        context["options"] = .list(options.filter { !($0.key == "enable-v2" && cluster.enableV2) }.map { option in
            ["key": .text(option.key), "value": .text(yamlValue(option.value))]
        })
        return context
    }

    private func isBackend(_ cluster: ClusterPlan) -> Bool {
        cluster.servesV2Discovery
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
