import Foundation
import MusterInventory

/// Inventory file to plan and rendered files: the one path that `render`, `up`, `verify` and
/// `down` share, so they always agree on URLs, tokens and IDs.
public struct PlanBuilder: Sendable {
    public var inventoryPath: String
    public var stateDirectory: String?
    public var templatesDirectory: String?
    public var cluster: String?

    public init(inventoryPath: String, stateDirectory: String? = nil, templatesDirectory: String? = nil,
                cluster: String? = nil) {
        self.inventoryPath = inventoryPath
        self.stateDirectory = stateDirectory
        self.templatesDirectory = templatesDirectory
        self.cluster = cluster
    }

    public struct Result {
        public var inventory: Inventory
        public var plan: Plan
        public var state: LocalState
    }

    /// Loads and checks the inventory, asks the member binary's version, makes discovery tokens
    /// that are missing, plans and renders. Throws `InventoryError` for bad input.
    public func build(lock: Bool = false) throws -> Result {
        let inventory = try InventoryLoader.load(path: inventoryPath)
        let version = try inventory.member.version ?? MemberBinary.version(of: inventory.member.binary)
        try inventory.check(memberVersion: version)
        let state = try LocalState(directory: stateDirectory ?? LocalState.defaultDirectory(forInventory: inventoryPath))
        if lock { try state.lock() }
        var tokens = try state.discoveryTokens()
        var changed = false
        for cluster in inventory.clusters {
            guard case .discovery(let source, _, _) = cluster.bootstrap, tokens[cluster.name] == nil else { continue }
            if case .service = source { continue }  // the service hands out the token at `up`
            tokens[cluster.name] = DiscoveryToken(token: LocalState.newToken())
            changed = true
        }
        if changed { try state.saveDiscoveryTokens(tokens) }
        let clusters = try Planner(inventory: inventory, facts: PlanFacts(memberVersion: version, discoveryTokens: tokens))
            .plan(only: cluster)
        let templates = try TemplateSet(directory: TemplateSet.locate(override: templatesDirectory))
        let files = try Renderer(templates: templates, inventory: inventory).files(for: clusters)
        return Result(inventory: inventory,
                      plan: Plan(inventory: inventoryPath, clusters: clusters, files: files), state: state)
    }
}
