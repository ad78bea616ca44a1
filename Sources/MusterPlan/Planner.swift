import MusterBasics
import MusterInventory

/// Facts gathered before planning, so the planner itself stays pure.
public struct PlanFacts: Sendable {
    /// `etcd --version` of the member binary, or `member.version`: every cluster's unless
    /// `memberVersions` names its own.
    public var memberVersion: String
    /// By cluster: the version of its own binary (`clusters.NAME.member`).
    public var memberVersions: [String: String]
    /// Discovery tokens from muster's local state, by cluster name.
    public var discoveryTokens: [String: DiscoveryToken]
    /// Clusters that formed, as muster's state recorded them, by name.
    public var histories: [String: ClusterHistory]
    /// By cluster: members to remove that are gone already (their host unreachable, or the
    /// member not running). They leave before any newcomer joins (etcd's runtime-reconfiguration
    /// guide: with the source down, remove first, then add), so no newcomer's `initial-cluster`
    /// names them. Learnt by `up` after it connected.
    public var departed: [String: Set<String>]
    /// By cluster: the `initial-cluster-token` of a restore under way. The cluster is planned as
    /// that restore founds it (every member a founder, IDs from the token), whatever its record
    /// says: `muster restore` takes its IDs and `initial-cluster` from this plan.
    public var restoring: [String: String]

    public init(memberVersion: String = "", memberVersions: [String: String] = [:],
                discoveryTokens: [String: DiscoveryToken] = [:],
                histories: [String: ClusterHistory] = [:], departed: [String: Set<String>] = [:],
                restoring: [String: String] = [:]) {
        self.memberVersion = memberVersion
        self.memberVersions = memberVersions
        self.discoveryTokens = discoveryTokens
        self.histories = histories
        self.departed = departed
        self.restoring = restoring
    }
}

extension PlanFacts {
    /// The version `cluster`'s members run.
    public func version(of cluster: String) -> String { memberVersions[cluster] ?? memberVersion }
}

/// A formed cluster's membership as recorded: its founding is history, and members that joined
/// later keep the `initial-cluster` they joined with, so re-renders leave every conf.yml as is.
public struct ClusterHistory: Sendable {
    public struct Founder: Sendable {
        public var name: String
        public var peerURL: String
        public var id: UInt64
        public init(name: String, peerURL: String, id: UInt64) {
            self.name = name
            self.peerURL = peerURL
            self.id = id
        }
    }
    public struct Joined: Sendable {
        public var id: UInt64
        public var peerURL: String
        public var initialCluster: String
        public init(id: UInt64, peerURL: String, initialCluster: String) {
            self.id = id
            self.peerURL = peerURL
            self.initialCluster = initialCluster
        }
    }
    public var clusterID: UInt64
    /// In founding order: the order of their `initial-cluster`.
    public var founders: [Founder]
    public var joined: [String: Joined]
    /// IDs of members removed since (a replaced founder keeps its place in `founders`).
    public var removedIDs: Set<UInt64> = []
    /// Members in the cluster now (founders and joined, less removed), as `name=peerURL`, in order.
    public var current: [(name: String, peerURL: String)]
    /// The `initial-cluster-token` of the last restore: its founders (`founders`) formed anew
    /// from a snapshot, whatever the cluster's bootstrap mode.
    public var restoreToken: String?

    public init(clusterID: UInt64, founders: [Founder], joined: [String: Joined], current: [(name: String, peerURL: String)]) {
        self.clusterID = clusterID
        self.founders = founders
        self.joined = joined
        self.current = current
    }
}

public struct PlanError: Error, CustomStringConvertible {
    public var description: String
}

/// Turns a checked inventory into the plan: URLs, IDs, tokens, DNS records and paths.
public struct Planner {
    public static let placeholderMarker = "MUSTER-PLACEHOLDER"
    let inventory: Inventory
    let facts: PlanFacts
    /// Asked once per cluster; computed once.
    private let v2DiscoveryBackends: Set<String>

    public init(inventory: Inventory, facts: PlanFacts) {
        self.inventory = inventory
        self.facts = facts
        v2DiscoveryBackends = Self.v2Backends(of: inventory, facts: facts)
    }

    public func plan(only clusterName: String? = nil) throws -> [ClusterPlan] {
        if let clusterName, inventory.cluster(named: clusterName) == nil {
            throw PlanError(description: "no cluster '\(clusterName)' in \(inventory.file) (clusters: \(inventory.clusters.map(\.name).joined(separator: ", ")))")
        }
        var plans: [String: ClusterPlan] = [:]
        var order: [String] = []
        for cluster in inventory.clustersInBringUpOrder {
            plans[cluster.name] = try plan(cluster, backends: plans)
            order.append(cluster.name)
        }
        guard let clusterName else { return order.compactMap { plans[$0] } }
        // A cluster needs its discovery backend: keep the chain it depends on.
        var needed: [String] = []
        var current: String? = clusterName
        while let name = current, !needed.contains(name) {
            needed.insert(name, at: 0)
            current = plans[name]?.dependsOn.first
        }
        return needed.compactMap { plans[$0] }
    }

    private func plan(_ cluster: Cluster, backends: [String: ClusterPlan]) throws -> ClusterPlan {
        let scheme = cluster.tls ? "https" : "http"
        let isBackend = v2DiscoveryBackends.contains(cluster.name)
        let mode = try modePlanning(cluster, backends: backends)
        // A restore under way founds the cluster again: no history, the restore's token.
        let restoring = facts.restoring[cluster.name]
        let history = restoring == nil ? facts.histories[cluster.name] : nil
        let restoreToken = restoring ?? history?.restoreToken
        let idToken = restoring ?? mode.idToken

        var members: [MemberPlan] = []
        for name in cluster.members {
            guard let host = inventory.host(named: name) else { continue }
            let advertiseHost: String
            if let dnsDomain = mode.advertisedDomain {
                advertiseHost = host.fqdn ?? "\(host.name).\(dnsDomain)"
            } else {
                advertiseHost = host.fqdn ?? URLParts.urlHost(host.address)
            }
            let address = URLParts.urlHost(host.address)
            let peerURL = "\(scheme)://\(advertiseHost):\(cluster.peerPort)"
            let loopback = "\(scheme)://127.0.0.1:\(cluster.clientPort)"
            let listenClients: [String]
            let advertiseClients: [String]
            switch cluster.clientListen {
            case .address:
                listenClients = ["\(scheme)://\(address):\(cluster.clientPort)", loopback]
                // Not 127.0.0.1 as the walkthrough did: clients that discover endpoints from the
                // member list (`etcdctl --cluster`, client balancers) would dial their own loopback.
                advertiseClients = ["\(scheme)://\(advertiseHost):\(cluster.clientPort)"]
            case .loopback:
                listenClients = [loopback]
                advertiseClients = [loopback]
            }
            members.append(MemberPlan(
                cluster: cluster.name, host: host.name, name: host.name, address: host.address,
                peerURL: peerURL, clientURLs: advertiseClients,
                listenPeerURLs: ["\(scheme)://\(address):\(cluster.peerPort)"],
                listenClientURLs: listenClients,
                endpoint: cluster.clientListen == .address ? listenClients[0] : loopback,
                memberID: idToken.map { EtcdIDs.memberID(peerURLs: [peerURL], token: $0) },
                paths: paths(for: cluster)))
        }
        // A restore founds by initial-cluster in every mode (the restore tool writes it into
        // the data), so its founders' conf.yml carries it.
        if mode.foundsStatically || restoreToken != nil {
            // Founders keep the initial-cluster they formed with; without a record, every member.
            let founding = history.map { $0.founders.map { "\($0.name)=\($0.peerURL)" } }
                ?? members.map { "\($0.name)=\($0.peerURL)" }
            for index in members.indices { members[index].initialCluster = founding.joined(separator: ",") }
        }
        if let history {
            // Newcomers join one at a time, in the inventory's order: each one's initial-cluster
            // holds the newcomers added before it in the same run.
            var joinedBefore: [(name: String, peerURL: String)] = []
            let departed = facts.departed[cluster.name] ?? []
            members = members.map { planned in
                let member = member(member: planned, of: history, joinedBefore: joinedBefore,
                                    departed: departed.subtracting(cluster.members))
                if member.join?.isNew == true { joinedBefore.append((member.name, member.peerURL)) }
                return member
            }
        }
        let ids = members.compactMap(\.memberID)
        let bootstrap = try mode.plan(members: members)
        let profile = try? EtcdVersionProfile(facts.version(of: cluster.name))
        return ClusterPlan(
            name: cluster.name, bootstrap: bootstrap, tls: cluster.tls,
            memberVersion: facts.version(of: cluster.name),
            // A 3.6+ member serves no v2 API (enable-v2 is refused in its keys).
            enableV2: profile?.servesV2API != false
                && (isBackend || cluster.etcdOptions.contains { $0.key == "enable-v2" && $0.value == .bool(true) }),
            clusterID: history?.clusterID ?? (ids.count == members.count && !ids.isEmpty ? EtcdIDs.clusterID(memberIDs: ids) : nil),
            members: members,
            dependsOn: mode.dependsOn,
            removals: history.map { removals(cluster, history: $0, scheme: scheme) } ?? [],
            restoreToken: restoreToken, servesV2Discovery: isBackend,
            learnerLimit: profile?.learnerLimit(options: cluster.etcdOptions) ?? 1)
    }

    /// Recorded members the inventory's `members:` no longer lists.
    private func removals(_ cluster: Cluster, history: ClusterHistory, scheme: String) -> [RemovalPlan] {
        // A member that joined since (a replaced one) is the one to remove, not the founder of
        // the same name it replaced, which is gone from the cluster already.
        let ids = Dictionary(history.founders.map { ($0.name, $0.id) }, uniquingKeysWith: { first, _ in first })
            .merging(history.joined.mapValues(\.id)) { _, joined in joined }
        return history.current.filter { !cluster.members.contains($0.name) }.map { gone in
            var member: MemberPlan?
            if let host = inventory.host(named: gone.name) {
                let address = URLParts.urlHost(host.address)
                member = MemberPlan(cluster: cluster.name, host: host.name, name: host.name, address: host.address,
                                    peerURL: gone.peerURL, clientURLs: ["\(scheme)://\(address):\(cluster.clientPort)"],
                                    listenPeerURLs: ["\(scheme)://\(address):\(cluster.peerPort)"],
                                    listenClientURLs: ["\(scheme)://\(address):\(cluster.clientPort)"],
                                    endpoint: "\(scheme)://\(address):\(cluster.clientPort)",
                                    memberID: ids[gone.name], paths: paths(for: cluster))
            }
            var removal = RemovalPlan(name: gone.name, id: ids[gone.name] ?? 0, peerURL: gone.peerURL, member: member)
            removal.beforeJoins = facts.departed[cluster.name]?.contains(gone.name) == true
            return removal
        }
    }

    /// A member of a formed cluster: a founder as it formed, a member that joined since with its
    /// recorded join, and one the inventory adds now as a learner to join (its ID comes from etcd).
    private func member(member: MemberPlan, of history: ClusterHistory,
                        joinedBefore: [(name: String, peerURL: String)], departed: Set<String>) -> MemberPlan {
        var member = member
        if let founder = history.founders.first(where: { $0.name == member.name && !history.removedIDs.contains($0.id) }),
           history.joined[member.name] == nil {
            member.memberID = founder.id
        } else if let joined = history.joined[member.name] {
            member.memberID = joined.id
            member.join = JoinPlan(initialCluster: joined.initialCluster, isNew: false)
            member.initialCluster = joined.initialCluster
        } else {
            let current = history.current.filter { $0.name != member.name && !departed.contains($0.name) }
                + joinedBefore + [(member.name, member.peerURL)]
            let initialCluster = current.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
            member.memberID = nil
            member.join = JoinPlan(initialCluster: initialCluster, isNew: true)
            member.initialCluster = initialCluster
        }
        // A member whose address (or fqdn) changed keeps its ID and data: its peer URLs are
        // updated in place (`member update`), then it restarts on the new address.
        if member.join?.isNew != true, let now = history.current.first(where: { $0.name == member.name })?.peerURL,
           !now.isEmpty, now != member.peerURL {
            member.formerPeerURL = now
        }
        return member
    }

    private func paths(for cluster: Cluster) -> MemberPaths {
        let p = inventory.paths, name = cluster.name, version = facts.version(of: cluster.name)
        let configDir = "\(p.config)/\(name)"
        return MemberPaths(
            binary: "\(p.install)/etcd-\(version)", etcdctl: "\(p.install)/etcdctl-\(version)",
            configDir: configDir, config: "\(configDir)/conf.yml", pkiDir: "\(configDir)/pki",
            data: "\(p.data)/\(name)", unit: "\(p.systemd)/etcd-\(name).service",
            startScript: "\(configDir)/start-member.sh", runDir: p.run, pidfile: "\(p.run)/\(name).pid",
            // A directory of the cluster's own: the etcd user may own it, never `paths.log` itself,
            // which may be shared (/var/log).
            logDir: "\(p.log)/\(name)", log: "\(p.log)/\(name)/\(name).log")
    }
}

