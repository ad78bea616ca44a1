import ArgumentParser
import Foundation
import MusterBasics
import MusterPKI
import MusterWorkspace

/// `muster client-cert INVENTORY --cluster C --name NAME [--out DIR]`: a client certificate
/// from the cluster's CA for another program, kept in the state beside muster's own
/// (`pki/CLUSTER/client-NAME.crt`, `.key`) and renewed when it nears its end by running this again.
struct ClientCertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-cert",
        abstract: "Issue a client certificate from a TLS cluster's CA for another program (Prometheus, kube-apiserver, Patroni).",
        discussion: "The certificate (common name NAME, client authentication only, 825 days) is kept in the state dir and reused until 30 days before it ends; run this again to renew it. --out DIR also writes ca.crt, NAME.crt and NAME.key (mode 0600) into DIR for the program's host. Contacts no host.")

    @OptionGroup var options: InventoryOptions

    @Option(help: "The certificate's name and common name (the program that will use it).")
    var name: String

    @Option(help: "Also write ca.crt, NAME.crt and NAME.key into this directory (made 0700 if missing).")
    var out: String?

    func run() async throws {
        try await reportingErrors {
            let (result, cluster) = try await options.soleClusterWithoutHosts()
            guard cluster.tls else {
                throw MusterError(.usage, "cluster '\(cluster.name)' has tls: false: its clients need no certificate")
            }
            let credentials = try ClientCredentials.of(cluster, in: result, name: name)
            print("\(name): \(credentials.certPath) (key \(credentials.keyPath), CA \(credentials.caPath))")
            guard let out else { return }
            try copy(credentials, into: out)
            print("wrote \(out)/ca.crt, \(out)/\(name).crt and \(out)/\(name).key")
        }
    }

    private func copy(_ credentials: ClientCredentials, into directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            for (source, target, mode) in [(credentials.caPath, "ca.crt", mode_t(0o644)),
                                           (credentials.certPath, "\(name).crt", 0o644),
                                           (credentials.keyPath, "\(name).key", 0o600)] {
                try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: source)), to: directory + "/" + target, mode: mode)
            }
        } catch let error as AtomicFileError {
            throw MusterError(.host, "cannot write into \(directory): \(error)")
        } catch {
            throw MusterError(.host, "cannot write into \(directory): \(error.localizedDescription)")
        }
    }
}
