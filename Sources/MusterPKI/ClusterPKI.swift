import Foundation
import Synchronization

/// A certificate and key on the controller, as files and as their PEM text.
public struct CertificateFiles: Sendable, Equatable {
    public var certPath: String
    public var keyPath: String
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var notAfter: Date
}

/// What `ClusterPKI` did about one certificate.
public enum CertificateOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The files on disk were still right and were kept as they are.
    case reused
    /// There were none: issued.
    case issued
    /// There were, but they had to be replaced (expiring, names changed, another CA, ...).
    case renewed(reason: String)

    public var description: String {
        switch self {
        case .reused: return "reused"
        case .issued: return "issued"
        case .renewed(let reason): return "renewed (\(reason))"
        }
    }
}

/// One member's server and peer certificates, and its gateway certificate where its etcd line
/// takes one.
public struct MemberCertificates: Sendable {
    public var member: String
    public var caPath: String
    public var caPEM: String
    /// The CA that signs peer certificates, the only one the peer port trusts.
    public var peerCAPEM: String
    public var server: CertificateFiles
    public var peer: CertificateFiles
    public var serverOutcome: CertificateOutcome
    public var peerOutcome: CertificateOutcome
    /// The client certificate etcd's own JSON gateway presents to this member's client port
    /// (`client-cert-file`, etcd 3.5 and later): self-signed, trusted by that port alone.
    public var gateway: CertificateFiles?
    public var gatewayOutcome: CertificateOutcome = .reused

    /// True when any certificate was written by this call (first issue or renewal): the member
    /// needs the new files and, if it runs, a restart.
    public var renewed: Bool { serverOutcome != .reused || peerOutcome != .reused || gatewayOutcome != .reused }

    /// What the member's client port trusts: the cluster CA, and its own gateway certificate
    /// (which no other member trusts).
    public var clientPortTrustPEM: String { caPEM + (gateway?.certificatePEM ?? "") }
}

/// A cluster's PKI in muster's local state, `STATE/pki/CLUSTER/` (directories 0700, keys 0600):
///
///     ca.crt ca.key                      the cluster CA (ECDSA P-256, 10 years): client port, clients
///     peer-ca.crt peer-ca.key            the peer CA: peer port only (clusters made before it: none)
///     MEMBER-server.crt MEMBER-server.key  a member's client-port certificate (serverAuth; etcd 3.4:
///                                          clientAuth too, its gateway presents it)
///     MEMBER-gateway.crt MEMBER-gateway.key  etcd 3.5+: the certificate the member's gateway presents
///                                          to its own client port (clientAuth, self-signed)
///     MEMBER-peer.crt MEMBER-peer.key      a member's peer-port certificate (serverAuth+clientAuth),
///                                          signed by the peer CA
///     (member certificates have no CN: etcd takes a client certificate's CN for a user name)
///     client.crt client.key              muster's and operators' etcdctl certificate, CN "muster"
///
/// Certificates are reused while they still fit: signed by this CA, key matching, the same SANs
/// and usages, and not expiring within `renewalWindow`. Otherwise they are issued anew.
public struct ClusterPKI: Sendable {
    public static let defaultRenewalWindow: TimeInterval = 30 * 86400
    public static let clientCommonName = "muster"

    public let cluster: String
    public let directory: String
    public let authority: CertificateAuthority
    /// Signs peer certificates. A second CA, so that muster's client certificate and the members'
    /// server keys are no peer credentials and peer keys are no client credentials. A cluster
    /// whose PKI predates it keeps signing peers with `authority` (its members trust nothing
    /// else on the peer port, and a new peer CA could only reach them all at once).
    public let peerAuthority: CertificateAuthority
    public var hasSeparatePeerCA: Bool { peerAuthority.baseName != authority.baseName }
    /// Certificates expiring sooner than this are renewed.
    public var renewalWindow: TimeInterval = ClusterPKI.defaultRenewalWindow
    /// Validity of newly issued member and client certificates.
    public var validityDays: Int = 825

    public var caPath: String { authority.certificatePath }

    /// `STATE/pki/CLUSTER`.
    public static func directory(stateDirectory: String, cluster: String) -> String {
        stateDirectory + "/pki/" + cluster
    }

    /// Kept in memory until committed: the CAs made by this value and the client certificate.
    let pendingAuthorities: PendingCertificates?

    /// Opens the cluster's PKI, creating the CA on first use. With `pending`, nothing is written
    /// to the state: a new CA, the client certificate (and member certificates given the same
    /// `pending`) wait there until `PendingCertificates.commitAuthorities()` or `commit()`.
    public init(stateDirectory: String, cluster: String, pending: PendingCertificates? = nil) throws {
        try ClusterPKI.checkFileName(cluster, what: "cluster")
        self.cluster = cluster
        directory = ClusterPKI.directory(stateDirectory: stateDirectory, cluster: cluster)
        pendingAuthorities = pending
        if let pending {
            pending.directories = [stateDirectory + "/pki", directory]
        } else {
            try PKIFiles.makeDirectory(stateDirectory + "/pki")
            try PKIFiles.makeDirectory(directory)
        }
        let peerCAPath = directory + "/peer-ca.crt", peerKeyPath = directory + "/peer-ca.key"
        let manager = FileManager.default
        let predatesPeerCA = manager.fileExists(atPath: directory + "/ca.crt")
            && !manager.fileExists(atPath: peerCAPath) && !manager.fileExists(atPath: peerKeyPath)
        authority = try CertificateAuthority(directory: directory, commonName: "muster CA for \(cluster)", pending: pending)
        peerAuthority = predatesPeerCA ? authority
            : try CertificateAuthority(directory: directory, commonName: "muster peer CA for \(cluster)", baseName: "peer-ca", pending: pending)
    }

    /// The member's server and peer certificates, each covering `dnsNames` and `ipAddresses`
    /// (muster passes the address, the FQDN, the DNS SRV domain, localhost and 127.0.0.1).
    /// With `pending`, new certificates are kept in memory there until the caller commits them:
    /// a run writes them into the state only once they are on the member's host.
    /// `fresh`: new keys and certificates whatever is on disk (a replaced member: its host may
    /// have been rebuilt after a compromise, so its old keys are not to be trusted again).
    /// `gateway`: the member's etcd presents a certificate of its own to its own client port
    /// (etcd 3.5 and later), so its server certificate carries serverAuth alone.
    ///
    /// None has a common name: etcd takes a client certificate's CN for the user name under
    /// `auth enable`, and the empty name is the one etcd's UserAdd refuses (`ErrUserEmpty`; it
    /// accepts any other string), so no user an operator creates, `root` included, can be a
    /// member's certificate. The member's name is in the OU, for people.
    public func memberCertificates(member: String, dnsNames: [String], ipAddresses: [String],
                                   pending: PendingCertificates? = nil, fresh: Bool = false,
                                   gateway: Bool = false) throws -> MemberCertificates {
        try ClusterPKI.checkFileName(member, what: "member")
        let (server, serverOutcome) = try ensure(kind: gateway ? .server : .serverDialingItself, base: "\(member)-server",
                                                 commonName: nil, organizationalUnit: "etcd member \(member) server",
                                                 dnsNames: dnsNames, ipAddresses: ipAddresses, pending: pending, fresh: fresh)
        let (peer, peerOutcome) = try ensure(kind: .peer, base: "\(member)-peer",
                                             commonName: nil, organizationalUnit: "etcd member \(member) peer",
                                             dnsNames: dnsNames, ipAddresses: ipAddresses, pending: pending, fresh: fresh)
        var certificates = MemberCertificates(member: member, caPath: caPath, caPEM: authority.certificatePEM,
                                              peerCAPEM: peerAuthority.certificatePEM, server: server, peer: peer,
                                              serverOutcome: serverOutcome, peerOutcome: peerOutcome)
        if gateway {
            (certificates.gateway, certificates.gatewayOutcome) = try ensure(
                kind: .client, base: "\(member)-gateway", commonName: nil, organizationalUnit: "etcd member \(member) gateway",
                dnsNames: [], ipAddresses: [], pending: pending, fresh: fresh, selfSigned: true)
        }
        return certificates
    }

    /// Deletes a member's certificates and keys from the state (a removed member): should it
    /// join again, it gets new ones.
    public static func forget(member: String, cluster: String, stateDirectory: String) throws {
        try checkFileName(member, what: "member")
        let directory = directory(stateDirectory: stateDirectory, cluster: cluster)
        for base in ["\(member)-server", "\(member)-peer", "\(member)-gateway"] {
            for file in ["\(directory)/\(base).crt", "\(directory)/\(base).key"] where FileManager.default.fileExists(atPath: file) {
                try FileManager.default.removeItem(atPath: file)
            }
        }
    }

    /// muster's client certificate (CN "muster", clientAuth), issued or renewed as needed.
    public func clientCertificate() throws -> (certPath: String, keyPath: String, caPath: String) {
        let (files, _) = try clientCertificateFiles()
        return (files.certPath, files.keyPath, caPath)
    }

    /// A client certificate this CA issues to another cluster's members, which reach this
    /// cluster as their v3 discovery backend (`STATE/pki/THIS/discovery-client-CLUSTER.*`).
    public func discoveryClientCertificate(for cluster: String, pending: PendingCertificates?) throws -> CertificateFiles {
        try ClusterPKI.checkFileName(cluster, what: "cluster")
        return try ensure(kind: .client, base: "discovery-client-\(cluster)", commonName: "muster discovery client for \(cluster)",
                          dnsNames: [], ipAddresses: [], pending: pending).0
    }

    /// The client certificate's files and what was done about them.
    public func clientCertificateFiles() throws -> (CertificateFiles, CertificateOutcome) {
        try ensure(kind: .client, base: "client", commonName: ClusterPKI.clientCommonName,
                   dnsNames: [], ipAddresses: [], pending: pendingAuthorities, authority: true)
    }

    /// A client certificate for another program (Prometheus, kube-apiserver, Patroni): common name
    /// NAME, clientAuth only, signed by the client CA, kept as `client-NAME.crt` and `.key` beside
    /// muster's own and renewed like it. Each program gets its own, so that one can be revoked
    /// (rebuilt) without touching the others or muster's.
    public func namedClientCertificateFiles(_ name: String) throws -> (CertificateFiles, CertificateOutcome) {
        try ClusterPKI.checkClientName(name)
        return try ensure(kind: .client, base: "client-\(name)", commonName: name, dnsNames: [], ipAddresses: [],
                          pending: pendingAuthorities)
    }

    /// Where a named client certificate lives, whether or not it was issued yet.
    public static func namedClientPaths(stateDirectory: String, cluster: String, name: String) -> (certPath: String, keyPath: String) {
        let base = directory(stateDirectory: stateDirectory, cluster: cluster) + "/client-" + name
        return (base + ".crt", base + ".key")
    }

    /// Letters, digits, `.`, `_` and `-`, at most 64, not starting with a dot or dash; not "muster",
    /// whose certificate is muster's own.
    public static func checkClientName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard allowed, (1...64).contains(name.utf8.count), !name.hasPrefix("."), !name.hasPrefix("-") else {
            throw PKIError(path: "", message: "client name \(String(reflecting: name)) must be 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
        guard name != clientCommonName else {
            throw PKIError(path: "", message: "client name \"\(clientCommonName)\" is muster's own certificate: name the program that will use it")
        }
    }

    // MARK: Reuse or issue

    /// `selfSigned`: signed by its own key, not by a CA of the cluster.
    func ensure(kind: CertificateKind, base: String, commonName: String?, organizationalUnit: String? = nil,
                dnsNames: [String], ipAddresses: [String], pending: PendingCertificates? = nil,
                authority: Bool = false, fresh: Bool = false, selfSigned: Bool = false) throws -> (CertificateFiles, CertificateOutcome) {
        let certPath = "\(directory)/\(base).crt", keyPath = "\(directory)/\(base).key"
        let wanted = try SANs(dnsNames: dnsNames, ipAddresses: ipAddresses)
        let manager = FileManager.default
        var outcome = CertificateOutcome.issued
        if fresh && (manager.fileExists(atPath: certPath) || manager.fileExists(atPath: keyPath)) {
            outcome = .renewed(reason: "new keys for a replaced member")
        } else if manager.fileExists(atPath: certPath) || manager.fileExists(atPath: keyPath) {
            switch judge(certPath: certPath, keyPath: keyPath, kind: kind, commonName: commonName, wanted: wanted, selfSigned: selfSigned) {
            case .keep(let files): return (files, .reused)
            case .replace(let reason): outcome = .renewed(reason: reason)
            }
        }
        let issued = selfSigned
            ? try CertificateAuthority.issueSelfSigned(kind: kind, organizationalUnit: organizationalUnit ?? base, validityDays: validityDays)
            : try signer(for: kind).issue(kind: kind, commonName: commonName, organizationalUnit: organizationalUnit,
                                          dnsNames: dnsNames, ipAddresses: ipAddresses, validityDays: validityDays)
        if let pending {
            pending.add(key: issued.privateKeyPEM, at: keyPath, certificate: issued.certificatePEM, at: certPath,
                        authority: authority)
        } else {
            try PKIFiles.write(issued.privateKeyPEM, to: keyPath, mode: 0o600)
            try PKIFiles.write(issued.certificatePEM, to: certPath, mode: 0o644)
        }
        return (CertificateFiles(certPath: certPath, keyPath: keyPath, certificatePEM: issued.certificatePEM,
                                 privateKeyPEM: issued.privateKeyPEM, notAfter: issued.notAfter), outcome)
    }

    /// What to do about the files on disk: each is read and parsed once.
    enum OnDisk {
        case keep(CertificateFiles)
        case replace(reason: String)
    }

    func judge(certPath: String, keyPath: String, kind: CertificateKind, commonName: String?, wanted: SANs,
               selfSigned: Bool = false) -> OnDisk {
        let certificatePEM: String, certificate: X509Certificate, privateKeyPEM: String, key: P256Key
        do {
            certificatePEM = try PKIFiles.readText(certPath)
            certificate = try X509Certificate(pem: certificatePEM, path: certPath)
            privateKeyPEM = try PKIFiles.readText(keyPath)
            key = try P256Key(pem: privateKeyPEM, path: keyPath)
        } catch {
            return .replace(reason: "\(error)")
        }
        if let reason = staleness(of: certificate, key: key, kind: kind, commonName: commonName, wanted: wanted, selfSigned: selfSigned) {
            return .replace(reason: reason)
        }
        return .keep(CertificateFiles(certPath: certPath, keyPath: keyPath, certificatePEM: certificatePEM,
                                      privateKeyPEM: privateKeyPEM, notAfter: certificate.notValidAfter))
    }

    /// Why a certificate and its key cannot be kept, or nil when they can.
    func staleness(of certificate: X509Certificate, key: P256Key, kind: CertificateKind, commonName: String?,
                   wanted: SANs, selfSigned: Bool = false) -> String? {
        if !certificate.hasPublicKey(of: key) {
            return "key does not match the certificate"
        }
        if selfSigned {
            if !certificate.isSigned(by: certificate) { return "not self-signed" }
        } else if !signer(for: kind).signed(certificate) {
            return kind == .peer ? "not signed by the peer CA" : "not signed by the cluster CA"
        }
        let now = Date()
        if certificate.notValidAfter < now + renewalWindow {
            let days = Int((certificate.notValidAfter.timeIntervalSince(now) / 86400).rounded(.down))
            return days < 0 ? "expired" : "expires in \(days) days"
        }
        if certificate.notValidBefore > now { return "not valid yet" }
        if certificate.commonNames != (commonName.map { [$0] } ?? []) {
            return commonName.map { "common name changed to \($0)" } ?? "a common name etcd would take for a user name"
        }
        if certificate.extendedKeyUsageFlags != kind.extendedKeyUsageFlags { return "key usages differ" }
        let present = SANs(certificate)
        if present != wanted {
            return "names changed: " + SANs.describe(present) + " -> " + SANs.describe(wanted)
        }
        return nil
    }

    func signer(for kind: CertificateKind) -> CertificateAuthority {
        kind == .peer ? peerAuthority : authority
    }

    static func checkFileName(_ name: String, what: String) throws {
        guard !name.isEmpty, !name.hasPrefix("."), !name.contains("/"), !name.contains("\0") else {
            throw PKIError(path: "", message: "\(what) name \"\(name)\" cannot name a file")
        }
    }
}

extension SANs {
    static func describe(_ sans: SANs) -> String {
        let all = sans.dnsNames.sorted() + sans.ipAddresses.compactMap(SANs.text(ofAddress:)).sorted()
        return all.isEmpty ? "none" : all.joined(separator: ",")
    }
}

/// Certificates issued but not yet written to the state directory: the authorities (CAs and
/// the client certificate muster speaks with), and member certificates.
public final class PendingCertificates: Sendable {
    private struct Pending {
        var authorities: [(text: String, path: String, mode: mode_t)] = []
        var files: [(text: String, path: String, mode: mode_t)] = []
        /// Made (0700) before the first file is written.
        var directories: [String] = []
    }
    private let pending = Mutex(Pending())

    /// Made (0700) before the first file is written.
    var directories: [String] {
        get { pending.withLock { $0.directories } }
        set { pending.withLock { $0.directories = newValue } }
    }

    public init() {}

    func add(key: String, at keyPath: String, certificate: String, at certPath: String, authority: Bool = false) {
        let pair: [(text: String, path: String, mode: mode_t)] = [(key, keyPath, 0o600), (certificate, certPath, 0o644)]
        pending.withLock { pending in
            if authority { pending.authorities += pair } else { pending.files += pair }
        }
    }

    public var isEmpty: Bool { pending.withLock { $0.files.isEmpty && $0.authorities.isEmpty } }

    /// Writes the CAs and the client certificate (key before certificate), then forgets them:
    /// once preflight has passed, before anything signed by them leaves the controller.
    public func commitAuthorities() throws {
        try pending.withLock { pending throws in try Self.writeAuthorities(&pending) }
    }

    /// Writes everything still pending (key before certificate), then forgets it.
    public func commit() throws {
        try pending.withLock { pending throws in
            try Self.writeAuthorities(&pending)
            for file in pending.files { try PKIFiles.write(file.text, to: file.path, mode: file.mode) }
            pending.files = []
        }
    }

    private static func writeAuthorities(_ pending: inout Pending) throws {
        guard !pending.authorities.isEmpty || !pending.files.isEmpty else { return }
        for directory in pending.directories { try PKIFiles.makeDirectory(directory) }
        for file in pending.authorities { try PKIFiles.write(file.text, to: file.path, mode: file.mode) }
        pending.authorities = []
    }
}
