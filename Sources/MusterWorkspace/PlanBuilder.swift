import Foundation
import MusterBasics
import MusterInventory
import MusterPlan

/// Which clusters a command works on. `--cluster NAME` means NAME; only `up` and `render` reach
/// further, to a discovery backend that a cluster which has not formed yet needs.
public enum ClusterScope: Sendable, Equatable {
    case all
    /// NAME alone: `down`, `verify`, `env`. A formed cluster no longer needs its backend.
    case only(String)
    /// NAME, and its discovery backend while NAME has not formed (`up`, `render`).
    case withBackendIfUnformed(String)

    public var name: String? {
        switch self {
        case .all: return nil
        case .only(let name), .withBackendIfUnformed(let name): return name
        }
    }
}

/// Everything a run reads from the disk, read once: the inventory, the member binaries' versions,
/// the templates, the state directory (locked when the run changes hosts) and the discovery
/// tokens. The plan is a pure function of these (`replanned`), so a run that learns a new token
/// plans again from memory and never lets go of its lock.
public struct Workspace: Sendable {
    public let inventoryPath: String
    public let inventory: Inventory
    /// By cluster: the version of the binary its members run (`etcd --version`, or `member.version`).
    public let memberVersions: [String: String]
    public let templates: TemplateSet
    public let state: LocalState
    public let scope: ClusterScope
    /// Tokens as this run knows them; saved to the state only by a step that applied them.
    public private(set) var tokens: [String: DiscoveryToken]
    /// The plan; its `files` are empty when the workspace was built with `renderingFiles: false`.
    public private(set) var plan: Plan
    /// Members to remove that are gone already, by cluster (`PlanFacts.departed`).
    public private(set) var departed: [String: Set<String>] = [:]
    /// Clusters being restored, with their restore's token (`PlanFacts.restoring`).
    public private(set) var restoring: [String: String] = [:]
    /// Whether `plan.files` holds the rendered files (`render` writes them as it renders them).
    public let rendersFiles: Bool

    init(inventoryPath: String, inventory: Inventory, memberVersions: [String: String], templates: TemplateSet,
         state: LocalState, scope: ClusterScope, tokens: [String: DiscoveryToken], rendersFiles: Bool = true) throws {
        self.inventoryPath = inventoryPath
        self.inventory = inventory
        self.memberVersions = memberVersions
        self.templates = templates
        self.state = state
        self.scope = scope
        self.tokens = tokens
        self.rendersFiles = rendersFiles
        plan = Plan(inventory: inventoryPath, clusters: [], files: [])
        plan = try Self.plan(self)
    }

    /// The same workspace with other tokens, planned again (no disk, no lock released).
    public func replanned(tokens: [String: DiscoveryToken]) throws -> Workspace {
        var copy = self
        copy.tokens = tokens
        copy.plan = try Self.plan(copy)
        return copy
    }

    /// The same workspace planned again knowing which members to remove are gone already:
    /// they leave first, and newcomers join without them.
    public func replanned(departed: [String: Set<String>]) throws -> Workspace {
        var copy = self
        copy.departed = departed
        copy.plan = try Self.plan(copy)
        return copy
    }
    /// The same workspace planned as a restore with `token` founds `cluster` again: every member
    /// a founder with the IDs that token gives, `initial-cluster` every member.
    public func replanned(restoring cluster: String, token: String) throws -> Workspace {
        var copy = self
        copy.restoring = [cluster: token]
        copy.plan = try Self.plan(copy)
        return copy
    }

    /// Renders this workspace's templates from its inventory.
    public var renderer: Renderer { Renderer(templates: templates, inventory: inventory) }

    /// Records that `cluster` formed with its token, in memory and in the state directory.
    public mutating func markFormed(_ cluster: String) throws {
        guard tokens[cluster] != nil, tokens[cluster]?.formed != true else { return }
        tokens[cluster]?.formed = true
        try saveToken(of: cluster)
    }

    /// Plans again after the state's cluster records changed (a member joined).
    public func reloaded() throws -> Workspace {
        try replanned(tokens: tokens)
    }

    /// Saves this run's token for `cluster`: called once the token is on the hosts.
    public func saveToken(of cluster: String) throws {
        let token = tokens[cluster]
        try state.updateDiscoveryTokens { $0[cluster] = token }
    }

    private static func plan(_ workspace: Workspace) throws -> Plan {
        var histories: [String: ClusterHistory] = [:]
        for cluster in workspace.inventory.clusters {
            histories[cluster.name] = try workspace.state.clusterRecord(cluster.name)?.history
            // Discovery's size counts at formation only: a formed cluster grows past it through
            // learners, like any other.
            if histories[cluster.name] == nil, let size = cluster.bootstrap.formationSize, size < cluster.members.count {
                throw InventoryError.at(cluster.bootstrapMark, in: workspace.inventoryPath,
                                        "discovery size \(size) of cluster '\(cluster.name)' is smaller than its \(cluster.members.count) members: the extra members could never join while it forms (once formed, members join through learners)")
            }
        }
        let facts = PlanFacts(memberVersions: workspace.memberVersions, discoveryTokens: workspace.tokens, histories: histories,
                              departed: workspace.departed, restoring: workspace.restoring)
        let all = try Planner(inventory: workspace.inventory, facts: facts).plan()
        let clusters: [ClusterPlan]
        switch workspace.scope {
        case .all:
            clusters = all
        case .only(let name):
            clusters = all.filter { $0.name == name }
        case .withBackendIfUnformed(let name):
            // A cluster needs its discovery backend until it has formed: keep the chain.
            var needed: [String] = []
            var current: String? = name
            while let next = current, !needed.contains(next) {
                needed.insert(next, at: 0)
                let formed = workspace.tokens[next]?.formed == true
                current = formed ? nil : all.first { $0.name == next }?.dependsOn.first
            }
            clusters = needed.compactMap { wanted in all.first { $0.name == wanted } }
        }
        let files = workspace.rendersFiles ? try workspace.renderer.files(for: clusters) : []
        return Plan(inventory: workspace.inventoryPath, clusters: clusters, files: files)
    }
}

/// Inventory file to workspace: the one path that `render`, `up`, `verify` and `down` share, so
/// they always agree on URLs, tokens and IDs.
public struct PlanBuilder: Sendable {
    public var inventoryPath: String
    public var stateDirectory: String?
    public var templatesDirectory: String?
    public var cluster: String?
    /// Whether `--cluster` also takes the backend an unformed cluster discovers through.
    public var includeBackendOfUnformedCluster = true
    /// `--allow-unsafe-etcd-keys`: the inventory may set the keys etcd calls unsafe.
    public var allowUnsafeEtcdKeys = false

    public init(inventoryPath: String, stateDirectory: String? = nil, templatesDirectory: String? = nil,
                cluster: String? = nil) {
        self.inventoryPath = inventoryPath
        self.stateDirectory = stateDirectory
        self.templatesDirectory = templatesDirectory
        self.cluster = cluster
    }

    /// Loads for a synchronous caller (tests; a command is async and calls `load`).
    /// `renderingFiles: false` plans without rendering (`plan.files` empty).
    public func build(lock: Bool = false, renderingFiles: Bool = true) throws -> Workspace {
        let inventory = try loadInventory()
        let versions = try MemberVersions.ask(inventory, inventoryPath: inventoryPath) { try MemberBinary.versionBlocking(of: $0) }
        return try assemble(inventory, versions: versions, lock: lock, renderingFiles: renderingFiles)
    }

    /// Loads for a run: `etcd --version` waits off the cooperative pool, once per distinct
    /// binary. `readOnly` (`--dry-run`)
    /// writes nothing into the state directory, not even the lock or a new token, and does not
    /// create it: a dry run must leave no trace for the next run to trust. `renderingFiles: false`
    /// plans without rendering: `render` renders and writes each file itself.
    public func load(lock: Bool, readOnly: Bool = false, renderingFiles: Bool = true) async throws -> Workspace {
        let inventory = try loadInventory()
        let versions = try await MemberVersions.ask(inventory, inventoryPath: inventoryPath) { try await MemberBinary.version(of: $0) }
        return try assemble(inventory, versions: versions, lock: lock && !readOnly, readOnly: readOnly, renderingFiles: renderingFiles)
    }

    private func loadInventory() throws -> Inventory {
        let inventory = try InventoryLoader.load(path: inventoryPath, allowUnsafeEtcdKeys: allowUnsafeEtcdKeys)
        if let cluster, inventory.cluster(named: cluster) == nil {
            let names = inventory.clusters.map(\.name)
            let hint = closest(to: cluster, in: Set(names)).map { "; did you mean '\($0)'?" } ?? ""
            throw MusterError(.usage, "no cluster '\(cluster)' in \(inventoryPath) (clusters: \(names.joined(separator: ", ")))\(hint)")
        }
        return inventory
    }

    private func assemble(_ inventory: Inventory, versions: [String: String], lock: Bool, readOnly: Bool = false,
                          renderingFiles: Bool = true) throws -> Workspace {
        try inventory.check(memberVersions: versions)
        // Before the state dir: a run refused for its templates leaves no state behind.
        let templates = try TemplateLoader.load(directory: try TemplateLoader.locate(override: templatesDirectory))
        let stateDirectory = self.stateDirectory ?? LocalState.defaultDirectory(forInventory: inventoryPath)
        try StateDirectoryCheck.check(stateDirectory)
        let state = try LocalState(directory: stateDirectory, create: false)
        let stored = try state.discoveryTokens()
        var fresh: [String: DiscoveryToken] = [:]
        for cluster in inventory.clusters {
            // A discovery service hands its token out at `up`.
            guard cluster.bootstrap.tokenMadeByMuster, stored[cluster.name] == nil else { continue }
            fresh[cluster.name] = DiscoveryToken(token: LocalState.newToken())
        }
        let scope: ClusterScope = cluster.map { includeBackendOfUnformedCluster ? .withBackendIfUnformed($0) : .only($0) } ?? .all
        func workspace(_ tokens: [String: DiscoveryToken], rendering: Bool) throws -> Workspace {
            try Workspace(inventoryPath: inventoryPath, inventory: inventory, memberVersions: versions,
                          templates: templates, state: state, scope: scope, tokens: tokens, rendersFiles: rendering)
        }
        // Planned whole before anything is written: a refused inventory leaves no state dir.
        let planUnderLock = !readOnly && (lock || !fresh.isEmpty)
        let checked = try workspace(stored.merging(fresh) { saved, _ in saved }, rendering: renderingFiles && !planUnderLock)
        if readOnly { return checked }
        try state.create()
        guard planUnderLock else { return checked }
        if lock { try state.lock() }
        // A token is what a render needs to be stable from one run to the next: it is kept even
        // by `render`, but nothing treats it as applied until the cluster formed with it. Under
        // the lock, what another run saved meanwhile wins, and the plan reads the records again.
        let tokens = try state.updateDiscoveryTokens { saved in
            for (name, token) in fresh where saved[name] == nil { saved[name] = token }
        }
        return try workspace(tokens, rendering: renderingFiles)
    }
}
