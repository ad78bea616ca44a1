import Foundation
import MusterBasics
import MusterDeploy
import MusterPKI
import MusterPlan
import MusterWorkspace

/// The client certificate a program speaks to a TLS cluster with: muster's own (`name` nil) or
/// one issued for another program by name. Issuing writes the state, so it happens under the
/// state's lock; with every file in place nothing is written and no lock is taken.
struct ClientCredentials {
    var caPath: String
    var certPath: String
    var keyPath: String

    static func of(_ cluster: ClusterPlan, in workspace: Workspace, name: String?) throws -> ClientCredentials {
        let state = URL(fileURLWithPath: workspace.state.directory).standardizedFileURL.path
        if let name {
            do { try ClusterPKI.checkClientName(name) } catch { throw MusterError(.usage, "--name: \(error)") }
        }
        let pki = ClusterPKI.directory(stateDirectory: state, cluster: cluster.name)
        let own = name.map { ClusterPKI.namedClientPaths(stateDirectory: state, cluster: cluster.name, name: $0) }
            ?? (pki + "/client.crt", pki + "/client.key")
        // A first `up` running meanwhile must not end with a CA key and certificate of two runs.
        let writes = ![pki + "/ca.crt", pki + "/ca.key", own.0, own.1].allSatisfy(FileManager.default.fileExists(atPath:))
        if writes { try workspace.state.lock() }
        defer { if writes { workspace.state.unlock() } }
        let authority = try ClusterPKI(stateDirectory: state, cluster: cluster.name)
        let files = try name.map { try authority.namedClientCertificateFiles($0).0 } ?? authority.clientCertificateFiles().0
        return ClientCredentials(caPath: authority.caPath, certPath: files.certPath, keyPath: files.keyPath)
    }

    /// The same files as another host will find them after `client-cert --out DIR`.
    func placed(in directory: String, name: String) -> ClientCredentials {
        ClientCredentials(caPath: directory + "/ca.crt", certPath: directory + "/\(name).crt", keyPath: directory + "/\(name).key")
    }
}

extension InventoryOptions {
    /// The workspace of a command that contacts no host and works on one cluster (`env`,
    /// `client-cert`): `--cluster`, or the inventory's only one; a backend of an unformed
    /// cluster is not part of it.
    func soleClusterWithoutHosts() async throws -> (Workspace, ClusterPlan) {
        var builder = builder()
        builder.includeBackendOfUnformedCluster = false
        let workspace = try await builder.load(lock: false)
        return (workspace, try workspace.soleCluster())
    }
}
