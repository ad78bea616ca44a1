import MusterInventory

/// Where a member's files live on its host.
public struct MemberPaths: Sendable, Codable, Equatable {
    public var binary: String
    public var etcdctl: String
    public var configDir: String
    public var config: String
    public var pkiDir: String
    public var data: String
    public var unit: String
    public var startScript: String
    public var runDir: String
    public var pidfile: String
    public var logDir: String
    public var log: String
}

public struct MemberPlan: Sendable, Codable {
    public var cluster: String
    public var host: String
    public var name: String
    public var address: String
    public var peerURL: String
    public var clientURLs: [String]
    public var listenPeerURLs: [String]
    public var listenClientURLs: [String]
    /// The URL muster itself queries for this member (first advertised client URL, or loopback).
    public var endpoint: String
    /// `nil` while the discovery URL is not known yet (a service token asked for at `up`).
    public var memberID: UInt64?
    public var paths: MemberPaths
}

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
}

public struct DiscoveryPlan: Sendable, Codable {
    public enum Backend: String, Sendable, Codable { case cluster, url, service }
    public var backend: Backend
    /// The backend cluster's name for `.cluster`.
    public var backendCluster: String?
    public var token: String
    /// What members get as `discovery:`; a marked placeholder until a service has answered.
    public var url: String
    public var isPlaceholder: Bool
    public var size: Int
    public var proxy: String?
    /// Where `up` asks for a token (`GET SERVICE/new?size=N`) for a service backend.
    public var serviceURL: String?
    /// The key `up` sets for an etcd backend: `PUT URL/_config/size value=N`.
    public var sizeKeyURL: String?
}

public struct ClusterPlan: Sendable, Codable {
    public var name: String
    public var mode: String
    public var tls: Bool
    public var memberVersion: String
    public var initialClusterToken: String?
    public var enableV2: Bool
    public var clusterID: UInt64?
    public var members: [MemberPlan]
    public var discovery: DiscoveryPlan?
    public var dns: DNSPlan?
    /// Clusters that must be up before this one (its discovery backend).
    public var dependsOn: [String]
}

/// One file muster puts on a host.
public struct RenderedFile: Sendable, Codable, Equatable {
    public var host: String
    public var path: String
    public var contents: String
    public var mode: Int
    /// `user:group` to own the file (private keys the etcd user must read); root's otherwise.
    public var owner: String?

    public init(host: String, path: String, contents: String, mode: Int, owner: String? = nil) {
        self.host = host
        self.path = path
        self.contents = contents
        self.mode = mode
        self.owner = owner
    }
}

/// Everything muster will do, decided before any host is contacted.
public struct Plan: Sendable, Codable {
    public var inventory: String
    public var clusters: [ClusterPlan]
    public var files: [RenderedFile]

    public func cluster(named name: String) -> ClusterPlan? { clusters.first { $0.name == name } }
}
