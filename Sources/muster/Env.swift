import ArgumentParser
import Foundation
import MusterBasics
import MusterPKI
import MusterPlan

/// `muster env INVENTORY --cluster NAME`: the shell exports that point etcdctl at a cluster.
struct Env: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the ETCDCTL_* exports for a cluster (muster's client certificate for TLS clusters).",
        discussion: "Use it as: eval \"$(muster env INVENTORY --cluster NAME)\"; contacts no host.")

    @OptionGroup var options: InventoryOptions

    func validate() throws {
        guard options.cluster != nil else { throw ValidationError("env needs --cluster NAME") }
    }

    func run() async throws {
        try await reportingErrors {
            let name = options.cluster ?? ""
            let result = try PlanBuilder(inventoryPath: options.inventory, stateDirectory: options.state,
                                         templatesDirectory: options.templates, cluster: name).build()
            guard let cluster = result.plan.cluster(named: name) else {
                throw ValidationError("no cluster named \(name) in \(options.inventory)")
            }
            let endpoints = cluster.members.map(\.endpoint).joined(separator: ",")
            var exports = [("ETCDCTL_API", "3"), ("ETCDCTL_ENDPOINTS", endpoints)]
            if cluster.tls {
                let state = URL(fileURLWithPath: result.state.directory).standardizedFileURL.path
                let client = try ClusterPKI(stateDirectory: state, cluster: cluster.name).clientCertificate()
                exports += [("ETCDCTL_CACERT", client.caPath), ("ETCDCTL_CERT", client.certPath),
                            ("ETCDCTL_KEY", client.keyPath)]
            }
            if cluster.members.contains(where: { $0.endpoint.contains("://127.0.0.1:") }) {
                print("# \(cluster.name) serves clients on its members' loopback only: run etcdctl on a member host")
            }
            print("export " + exports.map { "\($0.0)=\(Shell.quote($0.1))" }.joined(separator: " "))
            if !cluster.tls {
                print("unset ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY")
            }
        }
    }
}
