import Foundation
import MusterEtcd
import MusterPlan
import MusterSSH
import Synchronization

/// How the controller reaches each member's client URL: directly, or through an SSH tunnel
/// (`--via-ssh`, and clusters whose members serve clients on their own loopback only).
final class Endpoints: Sendable {
    /// By member name: loopback-only members all share the endpoint `http://127.0.0.1:PORT`.
    private let mapped: [String: String]
    /// By member name: its peer URL through a tunnel (`peers` with `viaSSH`).
    private let mappedPeers: [String: String]
    /// Closed once, by whoever closes first.
    private let tunnels: Mutex<[SSHTunnel]>
    private let tls: EtcdTLS?

    private init(mapped: [String: String], mappedPeers: [String: String] = [:], tunnels: [SSHTunnel], tls: EtcdTLS?) {
        self.mapped = mapped
        self.mappedPeers = mappedPeers
        self.tunnels = Mutex(tunnels)
        self.tls = tls
    }

    /// Opens one tunnel per member that needs it; `viaSSH` tunnels every member (and, with
    /// `peers`, every member's peer port too).
    static func open(for cluster: ClusterPlan, fleet: Fleet?, viaSSH: Bool, tls: EtcdTLS?, peers: Bool = false) async throws -> Endpoints {
        var mapped: [String: String] = [:], mappedPeers: [String: String] = [:], tunnels: [SSHTunnel] = []
        guard let fleet else { return Endpoints(mapped: mapped, tunnels: tunnels, tls: tls) }
        do {
            for member in cluster.members {
                let isLoopback = member.endpoint.contains("://127.0.0.1:")
                guard viaSSH || isLoopback else { continue }
                guard let url = URLComponents(string: member.endpoint), let port = url.port else { continue }
                let tunnel = try await fleet.session(member.host).openTunnel(toHost: "127.0.0.1", port: port)
                tunnels.append(tunnel)
                mapped[member.name] = "\(url.scheme ?? "http")://127.0.0.1:\(tunnel.localPort)"
                guard viaSSH && peers, let peer = URLComponents(string: member.peerURL), let peerHost = peer.host, let peerPort = peer.port else { continue }
                let peerTunnel = try await fleet.session(member.host).openTunnel(toHost: peerHost, port: peerPort)
                tunnels.append(peerTunnel)
                mappedPeers[member.name] = "\(peer.scheme ?? "http")://127.0.0.1:\(peerTunnel.localPort)"
            }
        } catch {
            for tunnel in tunnels { await tunnel.close() }
            throw error
        }
        return Endpoints(mapped: mapped, mappedPeers: mappedPeers, tunnels: tunnels, tls: tls)
    }

    func url(for member: String, endpoint: String) -> String { mapped[member] ?? endpoint }

    /// A client of `member`'s peer URL (directly or through its tunnel), for its TLS handshake.
    func peerClient(for member: MemberPlan, tls: EtcdTLS?, timeout: TimeInterval = 5) -> EtcdClient {
        EtcdClient(baseURL: mappedPeers[member.name] ?? member.peerURL, timeout: timeout, tls: tls)
    }

    func client(for member: MemberPlan, timeout: TimeInterval = 5) -> EtcdClient {
        EtcdClient(baseURL: url(for: member.name, endpoint: member.endpoint), timeout: timeout, tls: tls)
    }

    func client(for member: ExpectedMember, timeout: TimeInterval = 5) -> EtcdClient {
        EtcdClient(baseURL: url(for: member.name, endpoint: member.endpoint), timeout: timeout, tls: tls)
    }

    func close() async {
        let closing = tunnels.withLock { open in
            defer { open = [] }
            return open
        }
        for tunnel in closing { await tunnel.close() }
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
