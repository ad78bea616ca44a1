import Foundation
import MusterBasics
import MusterEtcd
import MusterPKI
import MusterPlan

/// The TLS side of a run: each member's certificates from muster's local CA, as files to push,
/// and the client certificate muster itself speaks TLS with.
struct ClusterCertificates {
    let pki: ClusterPKI
    /// Members whose certificates were issued or renewed in this run.
    var renewed: Set<String> = []
    var files: [RenderedFile] = []
    let tls: EtcdTLS

    init(cluster: ClusterPlan, stateDirectory: String) throws {
        pki = try ClusterPKI(stateDirectory: stateDirectory, cluster: cluster.name)
        let client = try pki.clientCertificate()
        tls = EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)
        for member in cluster.members {
            // Every name and address the member is reached by: its address, its advertised name,
            // the SRV domain (etcd 3.4 checks peers against it), and loopback for local clients.
            var names = ["localhost", hostPart(of: member.peerURL)]
            if let domain = cluster.dns?.domain { names.append(domain) }
            let addresses = [member.address, "127.0.0.1"]
            let certificates = try pki.memberCertificates(
                member: member.name, dnsNames: names.filter { !IPAddress.isLiteral($0) }.uniqued(),
                ipAddresses: (addresses + names.filter(IPAddress.isLiteral)).uniqued())
            if certificates.renewed { renewed.insert(member.name) }
            let pkiDir = member.paths.pkiDir
            files += [
                RenderedFile(host: member.host, path: "\(pkiDir)/ca.crt", contents: certificates.caPEM, mode: 0o644),
                RenderedFile(host: member.host, path: "\(pkiDir)/server.crt", contents: certificates.server.certificatePEM, mode: 0o644),
                RenderedFile(host: member.host, path: "\(pkiDir)/server.key", contents: certificates.server.privateKeyPEM, mode: 0o600, owner: "etcd:etcd"),
                RenderedFile(host: member.host, path: "\(pkiDir)/peer.crt", contents: certificates.peer.certificatePEM, mode: 0o644),
                RenderedFile(host: member.host, path: "\(pkiDir)/peer.key", contents: certificates.peer.privateKeyPEM, mode: 0o600, owner: "etcd:etcd"),
            ]
        }
    }

    /// The client certificate for a TLS cluster, `nil` for plain http (verify, `muster env`).
    static func clientTLS(for cluster: ClusterPlan, stateDirectory: String) throws -> EtcdTLS? {
        guard cluster.tls else { return nil }
        let client = try ClusterPKI(stateDirectory: stateDirectory, cluster: cluster.name).clientCertificate()
        return EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)
    }
}

func hostPart(of url: String) -> String {
    guard let host = URLComponents(string: url)?.host else { return url }
    return host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
}
