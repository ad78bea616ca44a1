import MusterBasics
import MusterInventory

public struct SRVRecord: Sendable, Codable, Equatable {
    public var service: String
    public var domain: String
    public var target: String
    public var port: Int
}

public struct HostRecord: Sendable, Codable, Equatable {
    public var fqdn: String
    public var address: String
}

public struct DNSPlan: Sendable, Codable {
    public var serverHost: String
    public var serverAddress: String
    public var domain: String
    public var serviceName: String
    public var configPath: String
    public var serverRecords: [SRVRecord]
    public var clientRecords: [SRVRecord]
    public var hostRecords: [HostRecord]
    /// dnsmasq's pidfile where no systemd supervises it, under the inventory's `paths.run`.
    public var pidfile: String = ""

    // The pidfile is a host detail, not part of the plan document tools read.
    enum CodingKeys: String, CodingKey {
        case serverHost, serverAddress, domain, serviceName, configPath, serverRecords, clientRecords, hostRecords
    }

    func addFoundingKeys(token: String, to context: inout TemplateContext) {
        context["discoverySRV"] = .text(domain)
        if !serviceName.isEmpty { context["discoverySRVName"] = .text(serviceName) }
        context["initialClusterToken"] = .text(token)
    }
}

extension ClusterPlan {
    public var dns: DNSPlan? {
        if case .dns(let plan, _) = bootstrap { return plan }
        return nil
    }
}

/// DNS SRV bootstrap: members advertise names under the cluster's domain, and find each other
/// by the SRV records muster's dnsmasq serves; the inventory's `token:` is their
/// `initial-cluster-token`.
struct DNSPlanning: ModePlanning {
    let cluster: Cluster
    let domain: String
    let serviceName: String
    let planner: Planner

    var idToken: String? { cluster.token }
    var foundsStatically: Bool { false }
    var advertisedDomain: String? { domain }

    func plan(members: [MemberPlan]) throws -> BootstrapPlan {
        guard let dns = planner.dnsPlan(cluster, domain: domain, serviceName: serviceName, members: members) else {
            throw PlanError(description: "cluster '\(cluster.name)' bootstraps by DNS but the inventory has no dns server")
        }
        return .dns(dns, token: cluster.token)
    }
}

extension Planner {
    fileprivate func dnsPlan(_ cluster: Cluster, domain: String, serviceName: String, members: [MemberPlan]) -> DNSPlan? {
        guard let dns = inventory.dns, let server = inventory.host(named: dns.server) else { return nil }
        // With TLS the -ssl records replace the plain ones: etcd 3.5 merges both lookups and
        // would otherwise see every member twice.
        let suffix = (cluster.tls ? "-ssl" : "") + (serviceName.isEmpty ? "" : "-\(serviceName)")
        func records(_ kind: String, port: Int) -> [SRVRecord] {
            members.map { member in
                SRVRecord(service: "_etcd-\(kind)\(suffix)._tcp", domain: domain,
                          target: URLParts.host(of: member.peerURL), port: port)
            }
        }
        let hostRecords = members.map { HostRecord(fqdn: URLParts.host(of: $0.peerURL), address: $0.address) }
        return DNSPlan(serverHost: server.name, serverAddress: server.address, domain: domain,
                       serviceName: serviceName,
                       configPath: "\(inventory.paths.dnsmasq)/muster-\(cluster.name).conf",
                       serverRecords: records("server", port: cluster.peerPort),
                       clientRecords: records("client", port: cluster.clientPort),
                       hostRecords: hostRecords, pidfile: "\(inventory.paths.run)/dnsmasq-\(cluster.name).pid")
    }
}
