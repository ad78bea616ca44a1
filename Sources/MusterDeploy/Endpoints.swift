import Foundation
import MusterEtcd
import MusterPlan
import MusterSSH

/// How the controller reaches each member's client URL: directly, or through an SSH tunnel
/// (`--via-ssh`, and clusters whose members serve clients on their own loopback only).
final class Endpoints: @unchecked Sendable {
    /// By member name: loopback-only members all share the endpoint `http://127.0.0.1:PORT`.
    private var mapped: [String: String] = [:]
    private var tunnels: [SSHTunnel] = []
    private var tls: EtcdTLS?

    /// Opens one tunnel per member that needs it; `viaSSH` tunnels every member.
    static func open(for cluster: ClusterPlan, fleet: Fleet?, viaSSH: Bool, tls: EtcdTLS?) async throws -> Endpoints {
        let endpoints = Endpoints()
        endpoints.tls = tls
        guard let fleet else { return endpoints }
        for member in cluster.members {
            let isLoopback = member.endpoint.contains("://127.0.0.1:")
            guard viaSSH || isLoopback else { continue }
            guard let url = URLComponents(string: member.endpoint), let port = url.port else { continue }
            let tunnel = try await fleet.session(member.host).openTunnel(toHost: "127.0.0.1", port: port)
            endpoints.tunnels.append(tunnel)
            endpoints.mapped[member.name] = "\(url.scheme ?? "http")://127.0.0.1:\(tunnel.localPort)"
        }
        return endpoints
    }

    func url(for member: String, endpoint: String) -> String { mapped[member] ?? endpoint }

    func client(for member: MemberPlan, timeout: TimeInterval = 5) -> EtcdClient {
        EtcdClient(baseURL: url(for: member.name, endpoint: member.endpoint), timeout: timeout, tls: tls)
    }

    func client(for member: ExpectedMember, timeout: TimeInterval = 5) -> EtcdClient {
        EtcdClient(baseURL: url(for: member.name, endpoint: member.endpoint), timeout: timeout, tls: tls)
    }

    func close() async {
        for tunnel in tunnels { await tunnel.close() }
        tunnels = []
    }
}

extension ClusterPlan {
    /// What verification asserts, as the planner predicted it.
    var expectation: ClusterExpectation {
        ClusterExpectation(
            clusterName: name, clusterID: clusterID ?? 0,
            members: members.map {
                ExpectedMember(name: $0.name, memberID: $0.memberID ?? 0, peerURLs: [$0.peerURL],
                               clientURLs: $0.clientURLs, endpoint: $0.endpoint)
            })
    }
}

extension ClusterPlan {
    /// The same cluster narrowed to some members (to wait for one restarted member).
    init(copying cluster: ClusterPlan, members: [MemberPlan]) {
        self = cluster
        self.members = members
    }
}
