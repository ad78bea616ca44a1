import Foundation
import MusterBasics

/// The readable account of a plan: what runs where, with which URLs, IDs and tokens.
public enum PlanSummary {
    public static func text(_ plan: Plan) -> String {
        var lines: [String] = []
        for cluster in plan.clusters {
            var header = "cluster \(cluster.name): \(cluster.members.count) members, bootstrap \(cluster.mode), "
            header += cluster.tls ? "TLS" : "plain http"
            header += ", etcd \(cluster.memberVersion)"
            lines.append(header)
            if let id = cluster.clusterID { lines.append("  cluster ID   \(EtcdIDs.hex(id))") }
            if let token = cluster.initialClusterToken { lines.append("  token        \(token)") }
            if cluster.enableV2 { lines.append("  v2 API       enabled (discovery backend of another cluster)") }
            if let discovery = cluster.discovery {
                lines.append("  discovery    \(discovery.url)")
                if discovery.isPlaceholder {
                    lines.append("               placeholder: `up` asks \(discovery.serviceURL ?? "")/new?size=\(discovery.size) for the real URL")
                }
                if let key = discovery.sizeKeyURL { lines.append("  size key     PUT \(key) value=\(discovery.size)") }
                if let proxy = discovery.proxy { lines.append("  proxy        \(proxy)") }
            }
            if let dns = cluster.dns {
                lines.append("  dnsmasq      on \(dns.serverHost) (\(dns.serverAddress)), \(dns.configPath)")
                for record in dns.serverRecords + dns.clientRecords {
                    lines.append("  SRV          \(record.service).\(record.domain) -> \(record.target):\(record.port)")
                }
            }
            for member in cluster.members {
                let id = member.memberID.map(EtcdIDs.hex) ?? "(known once the discovery URL is)"
                lines.append("  member \(member.name) on \(member.host) (\(member.address)) id \(id)")
                lines.append("    peer     \(member.peerURL)")
                lines.append("    clients  \(member.clientURLs.joined(separator: ","))")
                lines.append("    data     \(member.paths.data)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A stable JSON document for tools: IDs as etcdctl's hex, files without their contents.
    public static func json(_ plan: Plan) throws -> Data {
        struct Document: Encodable {
            var inventory: String
            var clusters: [ClusterDocument]
            var files: [FileDocument]
        }
        struct ClusterDocument: Encodable {
            var name: String, mode: String, tls: Bool, member_version: String
            var cluster_id: String?, token: String?, enable_v2: Bool
            var discovery: DiscoveryPlan?, dns: DNSPlan?, depends_on: [String]
            var members: [MemberDocument]
        }
        struct MemberDocument: Encodable {
            var name: String, host: String, address: String, id: String?
            var peer_url: String, client_urls: [String], endpoint: String, paths: MemberPaths
        }
        struct FileDocument: Encodable { var host: String, path: String, mode: String }
        let document = Document(
            inventory: plan.inventory,
            clusters: plan.clusters.map { cluster in
                ClusterDocument(
                    name: cluster.name, mode: cluster.mode, tls: cluster.tls, member_version: cluster.memberVersion,
                    cluster_id: cluster.clusterID.map(EtcdIDs.hex), token: cluster.initialClusterToken,
                    enable_v2: cluster.enableV2, discovery: cluster.discovery, dns: cluster.dns,
                    depends_on: cluster.dependsOn,
                    members: cluster.members.map { member in
                        MemberDocument(name: member.name, host: member.host, address: member.address,
                                       id: member.memberID.map(EtcdIDs.hex), peer_url: member.peerURL,
                                       client_urls: member.clientURLs, endpoint: member.endpoint, paths: member.paths)
                    })
            },
            files: plan.files.map { FileDocument(host: $0.host, path: $0.path, mode: String($0.mode, radix: 8)) })
        return try JSONEncoder.sortedPretty.encode(document)
    }
}
