import ArgumentParser
import MusterWorkspace

/// Flags every inventory-reading command takes.
struct InventoryOptions: ParsableArguments {
    @Argument(help: "The inventory file (YAML).")
    var inventory: String

    @Option(help: "Only this cluster (see each command for whether its discovery backend comes along).",
            completion: InventoryCompletion.clusters)
    var cluster: String?

    @Option(help: "Muster's state directory for this inventory (default: .muster/NAME beside it).")
    var state: String?

    @Option(help: "Directory of the templates to render (default: found beside the muster binary).")
    var templates: String?

    @Flag(help: "Let the inventory's etcd: set force-new-cluster, unsafe-no-fsync or experimental-peer-skip-client-san-verification.")
    var allowUnsafeEtcdKeys = false

    func builder() -> PlanBuilder {
        var builder = PlanBuilder(inventoryPath: inventory, stateDirectory: state, templatesDirectory: templates, cluster: cluster)
        builder.allowUnsafeEtcdKeys = allowUnsafeEtcdKeys
        return builder
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}
