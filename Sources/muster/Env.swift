import ArgumentParser
import Foundation
import MusterBasics
import MusterPKI
import MusterPlan
import MusterWorkspace

/// `muster env INVENTORY --cluster NAME`: the shell exports that point etcdctl at a cluster.
struct Env: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the ETCDCTL_* exports for a cluster (muster's client certificate for TLS clusters).",
        discussion: "Use it as: eval \"$(muster env INVENTORY [--cluster NAME])\"; --cluster may be left out when the inventory has one cluster. Contacts no host.")

    @OptionGroup var options: InventoryOptions

    func run() async throws {
        try await reportingErrors {
            var builder = options.builder()
            builder.includeBackendOfUnformedCluster = false
            let result = try await builder.load(lock: false)
            guard let cluster = options.cluster.flatMap(result.plan.cluster(named:)) ?? (result.plan.clusters.count == 1 ? result.plan.clusters.first : nil) else {
                throw MusterError(.usage, "\(options.inventory) has \(result.plan.clusters.count) clusters (\(result.plan.clusters.map(\.name).joined(separator: ", "))): name one with --cluster NAME")
            }
            let endpoints = cluster.members.map(\.endpoint).joined(separator: ",")
            var exports = [("ETCDCTL_API", "3"), ("ETCDCTL_ENDPOINTS", endpoints)]
            if cluster.tls {
                let state = URL(fileURLWithPath: result.state.directory).standardizedFileURL.path
                // Making the CA or the client certificate writes the state: under the lock, so a
                // first `up` running meanwhile cannot end with a CA key and certificate of two runs.
                let pki = ClusterPKI.directory(stateDirectory: state, cluster: cluster.name)
                let writes = !["ca.crt", "ca.key", "client.crt", "client.key"].allSatisfy {
                    FileManager.default.fileExists(atPath: pki + "/" + $0)
                }
                if writes { try result.state.lock() }
                defer { if writes { result.state.unlock() } }
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
