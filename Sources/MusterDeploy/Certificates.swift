import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPKI
import MusterPlan

/// The TLS side of a run: each member's certificates from muster's local CA, as files to push,
/// and the client certificate muster itself speaks TLS with. New member certificates stay in
/// memory until `commit`: a run that fails before they reach their hosts leaves the state as it
/// was (a `--dry-run` with a wrong address must not make the next `up` restart a member). So does
/// a CA made for a state dir that had none, until `commitAuthorities` after preflight: a copied
/// inventory refused there must not leave a CA that a later run would take for the cluster's.
struct ClusterCertificates {
    let pki: ClusterPKI
    /// Members whose certificates were issued or renewed in this run.
    var renewed: Set<String> = []
    var files: [RenderedFile] = []
    let tls: EtcdTLS
    let pending = PendingCertificates()

    /// What a member's CA files must hold to trust this state's CAs.
    var authorities: Preflight.Authorities {
        Preflight.Authorities(
            caSHA256: Digest.sha256Hex(Data(pki.authority.certificatePEM.utf8)),
            peerCASHA256: Digest.sha256Hex(Data(pki.peerAuthority.certificatePEM.utf8)),
            madeNow: pki.authority.created, pkiDirectory: pki.directory)
    }

    /// `reissuing`: members that get new keys whatever the state holds (a replaced member).
    init(cluster: ClusterPlan, stateDirectory: String, reissuing: Set<String> = []) throws {
        pki = try ClusterPKI(stateDirectory: stateDirectory, cluster: cluster.name, pending: pending)
        let client = try pki.clientCertificate()
        tls = EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)
        // etcd 3.5+ gives its gateway a certificate of its own (3.4 presents the server one).
        let ownGateway = (try? EtcdVersionProfile(cluster.memberVersion))?.gatewayTakesItsOwnClientCertificate ?? false
        for member in cluster.members {
            // Every name and address the member is reached by: its address, its advertised name,
            // the SRV domain (etcd 3.4 checks peers against it), and loopback for local clients.
            var names = ["localhost", URLParts.host(of: member.peerURL)]
            if let domain = cluster.dns?.domain { names.append(domain) }
            let addresses = [member.address, "127.0.0.1"]
            let certificates = try pki.memberCertificates(
                member: member.name, dnsNames: names.filter { !IPAddress.isLiteral($0) }.uniqued(),
                ipAddresses: (addresses + names.filter(IPAddress.isLiteral)).uniqued(), pending: pending,
                fresh: reissuing.contains(member.name), gateway: ownGateway)
            if certificates.renewed { renewed.insert(member.name) }
            let paths = member.paths
            files += [
                RenderedFile(host: member.host, path: paths.caCert, contents: certificates.caPEM, mode: 0o644),
                RenderedFile(host: member.host, path: paths.peerCACert, contents: certificates.peerCAPEM, mode: 0o644),
                RenderedFile(host: member.host, path: paths.serverCert, contents: certificates.server.certificatePEM, mode: 0o644),
                RenderedFile(host: member.host, path: paths.serverKey, contents: certificates.server.privateKeyPEM, mode: 0o600, owner: "etcd:etcd"),
                RenderedFile(host: member.host, path: paths.peerCert, contents: certificates.peer.certificatePEM, mode: 0o644),
                RenderedFile(host: member.host, path: paths.peerKey, contents: certificates.peer.privateKeyPEM, mode: 0o600, owner: "etcd:etcd"),
            ]
            if let gateway = certificates.gateway {
                files += [
                    RenderedFile(host: member.host, path: paths.clientPortTrust, contents: certificates.clientPortTrustPEM, mode: 0o644),
                    RenderedFile(host: member.host, path: paths.gatewayCert, contents: gateway.certificatePEM, mode: 0o644),
                    RenderedFile(host: member.host, path: paths.gatewayKey, contents: gateway.privateKeyPEM, mode: 0o600, owner: "etcd:etcd"),
                ]
            }
        }
    }

    /// The files a v3 discovery member presents to a TLS backend: for an inventory backend, a
    /// client certificate its CA issues (kept in the backend's state with its own, once its
    /// hosts have their files); for an external one, the inventory's `tls:` files as they are.
    mutating func addDiscoveryClient(_ discovery: DiscoveryV3Plan, of cluster: ClusterPlan, backend: ClusterCertificates?,
                                     external: DiscoveryTLSFiles?) throws {
        let ca: String, cert: String, key: String
        if let backend {
            let client = try backend.pki.discoveryClientCertificate(for: cluster.name, pending: backend.pending)
            (ca, cert, key) = (backend.pki.authority.certificatePEM, client.certificatePEM, client.privateKeyPEM)
        } else if let external {
            func read(_ path: String, _ what: String) throws -> String {
                do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                    throw MusterError(.input, cluster: cluster.name, "cluster '\(cluster.name)': discovery tls \(what) \(path) cannot be read on the controller: \(error.localizedDescription)")
                }
            }
            (ca, cert, key) = (try read(external.ca, "ca"), try read(external.cert, "cert"), try read(external.key, "key"))
        } else {
            return  // the backend is not in this run (the cluster formed): its members have the files
        }
        for member in cluster.members {
            let paths = member.paths
            files += [
                RenderedFile(host: member.host, path: paths.discoveryCACert, contents: ca, mode: 0o644),
                RenderedFile(host: member.host, path: paths.discoveryCert, contents: cert, mode: 0o644),
                RenderedFile(host: member.host, path: paths.discoveryKey, contents: key, mode: 0o600, owner: "etcd:etcd"),
            ]
        }
    }

    /// Writes this run's new certificates into the state: call once they are on the hosts.
    func commit() throws { try pending.commit() }

    /// Writes a CA made by this run and the client certificate into the state: call once
    /// preflight has passed, before anything they sign reaches a host.
    func commitAuthorities() throws { try pending.commitAuthorities() }

    /// The client certificate for a TLS cluster, `nil` for plain http (verify, snapshots,
    /// sessions). A state dir without the cluster's CA never brought it up: refused, rather than
    /// a CA made there that no member trusts (and that a later `up` would take for the cluster's).
    /// What reads the certificate a member presents on its peer port: the peer CA as the only
    /// trust root (the cluster CA for a PKI older than it), muster's client certificate offered.
    /// The peer port takes only peer certificates, and says so after the handshake (TLS 1.3),
    /// once the member's certificate is in hand.
    static func peerProbeTLS(for cluster: ClusterPlan, stateDirectory: String) throws -> EtcdTLS? {
        guard let client = try clientTLS(for: cluster, stateDirectory: stateDirectory) else { return nil }
        let peerCA = ClusterPKI.directory(stateDirectory: stateDirectory, cluster: cluster.name) + "/peer-ca.crt"
        guard FileManager.default.fileExists(atPath: peerCA) else { return client }
        return EtcdTLS(caPath: peerCA, certPath: client.certPath, keyPath: client.keyPath)
    }

    static func clientTLS(for cluster: ClusterPlan, stateDirectory: String) throws -> EtcdTLS? {
        guard cluster.tls else { return nil }
        let pkiDirectory = ClusterPKI.directory(stateDirectory: stateDirectory, cluster: cluster.name)
        guard FileManager.default.fileExists(atPath: pkiDirectory + "/ca.crt") else {
            throw MusterError(.refused, cluster: cluster.name, "cluster '\(cluster.name)': the state dir \(stateDirectory) holds no CA for it (\(pkiDirectory)/ca.crt), so it never brought the cluster up: a copied or moved inventory gets a state dir of its own; --state names the one that did (or run `muster up` first)")
        }
        let client = try ClusterPKI(stateDirectory: stateDirectory, cluster: cluster.name).clientCertificate()
        return EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)
    }
}
