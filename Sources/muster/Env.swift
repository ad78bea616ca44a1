import ArgumentParser
import Foundation
import MusterBasics
import MusterPlan
import MusterYAML
import MusterWorkspace

/// `muster env INVENTORY --cluster NAME [--for PROGRAM]`: what a client needs to reach a cluster,
/// in the form the program reads: etcdctl's exports, kube-apiserver's flags, a kubeadm
/// ClusterConfiguration's `etcd.external`, or Patroni's `etcd3:` section.
struct Env: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print how a client reaches a cluster: etcdctl's exports, or kube-apiserver's, kubeadm's or Patroni's settings.",
        discussion: "Use it as: eval \"$(muster env INVENTORY [--cluster NAME])\"; --cluster may be left out when the inventory has one cluster. With --for another program, the client certificate is the one issued for --name (default: the program's name), made from the cluster's CA if it does not exist yet (as `muster client-cert` does). Contacts no host.")

    enum Program: String, ExpressibleByArgument, CaseIterable {
        case etcdctl, kubeApiserver = "kube-apiserver", kubeadm, patroni

        /// The client certificate's name when `--name` is not given: etcdctl speaks with
        /// muster's own; every other program gets one of its own.
        var defaultClientName: String? {
            switch self {
            case .etcdctl: return nil
            case .kubeApiserver, .kubeadm: return "kube-apiserver"
            case .patroni: return "patroni"
            }
        }
    }

    @OptionGroup var options: InventoryOptions

    @Option(name: .customLong("for"), help: "The program: etcdctl (exports), kube-apiserver (flags), kubeadm (ClusterConfiguration) or patroni (etcd3 section).")
    var program: Program = .etcdctl

    @Option(help: "The client certificate's name (see `muster client-cert`); default: muster's own for etcdctl, the program's name for the others.")
    var name: String?

    @Option(help: "Print the certificate paths as DIR/ca.crt, DIR/NAME.crt and DIR/NAME.key: where `muster client-cert --out DIR` puts them on the program's host.")
    var certDir: String?

    func run() async throws {
        try await reportingErrors {
            let (result, cluster) = try await options.soleClusterWithoutHosts()
            let clientName = name ?? program.defaultClientName
            if certDir != nil && clientName == nil {
                throw MusterError(.usage, "--cert-dir names where a named client certificate lies: add --name NAME")
            }
            var credentials = try cluster.tls ? ClientCredentials.of(cluster, in: result, name: clientName) : nil
            if let certDir, let clientName { credentials = credentials?.placed(in: certDir, name: clientName) }
            if cluster.members.contains(where: { $0.endpoint.contains("://127.0.0.1:") }) {
                print("# \(cluster.name) serves clients on its members' loopback only: run the client on a member host")
            }
            print(ClientSettings(endpoints: cluster.members.map(\.endpoint), credentials: credentials).text(for: program))
        }
    }
}

/// One cluster's endpoints and client credentials, written out for each program.
struct ClientSettings {
    var endpoints: [String]
    var credentials: ClientCredentials?

    func text(for program: Env.Program) -> String {
        switch program {
        case .etcdctl: return etcdctl
        case .kubeApiserver: return kubeApiserver
        case .kubeadm: return kubeadm
        case .patroni: return patroni
        }
    }

    private var etcdctl: String {
        var exports = [("ETCDCTL_API", "3"), ("ETCDCTL_ENDPOINTS", endpoints.joined(separator: ","))]
        if let credentials {
            exports += [("ETCDCTL_CACERT", credentials.caPath), ("ETCDCTL_CERT", credentials.certPath),
                        ("ETCDCTL_KEY", credentials.keyPath)]
        }
        let line = "export " + exports.map { "\($0.0)=\(Shell.quote($0.1))" }.joined(separator: " ")
        return credentials == nil ? line + "\nunset ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY" : line
    }

    /// One flag per line, ready for a static pod's `command:` or a unit's ExecStart.
    private var kubeApiserver: String {
        var flags = ["--etcd-servers=" + endpoints.joined(separator: ",")]
        if let credentials {
            flags += ["--etcd-cafile=" + credentials.caPath, "--etcd-certfile=" + credentials.certPath,
                      "--etcd-keyfile=" + credentials.keyPath]
        }
        return flags.joined(separator: "\n")
    }

    private var kubeadm: String {
        var lines = ["apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "etcd:", "  external:",
                     "    endpoints:"]
        lines += endpoints.map { "      - " + YAMLEmitter.scalar($0) }
        if let credentials {
            lines += ["    caFile: " + YAMLEmitter.scalar(credentials.caPath), "    certFile: " + YAMLEmitter.scalar(credentials.certPath),
                      "    keyFile: " + YAMLEmitter.scalar(credentials.keyPath)]
        }
        return lines.joined(separator: "\n")
    }

    /// Patroni's etcd3 section: `hosts` as HOST:PORT, the scheme apart.
    private var patroni: String {
        let hosts = endpoints.map { $0.replacingOccurrences(of: "https://", with: "").replacingOccurrences(of: "http://", with: "") }
        var lines = ["etcd3:", "  hosts: " + YAMLEmitter.scalar(hosts.joined(separator: ",")),
                     "  protocol: " + (credentials == nil ? "http" : "https")]
        if let credentials {
            lines += ["  cacert: " + YAMLEmitter.scalar(credentials.caPath), "  cert: " + YAMLEmitter.scalar(credentials.certPath),
                      "  key: " + YAMLEmitter.scalar(credentials.keyPath)]
        }
        return lines.joined(separator: "\n")
    }
}
