internal import CLibCrypto
import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// What a certificate is for; decides its extended key usages.
public enum CertificateKind: String, Sendable, CaseIterable {
    /// A member's client-port certificate: serverAuth only, so that no member's server key is a
    /// client credential (etcd 3.5 and later: its gateway presents a certificate of its own,
    /// `client-cert-file`).
    case server
    /// A member's client-port certificate for etcd 3.4: clientAuth too. etcd 3.4's gRPC gateway
    /// dials its own client port presenting the server certificate (etcd issue 9785), and 3.4
    /// has no `client-cert-file` to give it another.
    case serverDialingItself
    /// A member's peer-port certificate: peers are servers and clients of each other.
    case peer
    /// muster's and operators' etcdctl certificate, and a member's gateway certificate.
    case client

    /// extendedKeyUsage, in OpenSSL's configuration syntax.
    var extendedKeyUsages: String {
        switch self {
        case .server: return "serverAuth"
        case .serverDialingItself, .peer: return "serverAuth,clientAuth"
        case .client: return "clientAuth"
        }
    }

    /// The same usages as libcrypto's XKU_* flags.
    var extendedKeyUsageFlags: UInt32 {
        switch self {
        case .server: return UInt32(XKU_SSL_SERVER)
        case .serverDialingItself, .peer: return UInt32(XKU_SSL_SERVER | XKU_SSL_CLIENT)
        case .client: return UInt32(XKU_SSL_CLIENT)
        }
    }
}

/// A freshly signed certificate and its private key, both PEM.
public struct IssuedCertificate: Sendable {
    public var certificatePEM: String
    /// PKCS#8 (`BEGIN PRIVATE KEY`), which etcd, Go and NIOSSL all read.
    public var privateKeyPEM: String
    public var notAfter: Date
}

/// Why a certificate or key could not be read, made or written.
public struct PKIError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// A cluster's certificate authority: `ca.crt` (PEM) and `ca.key` (PEM, 0600) in one directory,
/// an ECDSA P-256 key, self-signed for 10 years. Loaded when both files exist, created when neither
/// does; one without the other is an error (never silently replaced: members trust the old CA).
/// Keys and signatures are libcrypto's (OpenSSL 3, already linked by libssh2).
public struct CertificateAuthority: Sendable {
    public static let validityDays = 3650

    public let directory: String
    let certificate: X509Certificate
    let privateKey: P256Key
    /// The certificate as it is on disk.
    public let certificatePEM: String
    /// True when this call created the CA (no files were there).
    public let created: Bool

    /// The files' name without extension: `ca`, or `peer-ca` for a cluster's peer CA.
    public let baseName: String
    public var certificatePath: String { directory + "/\(baseName).crt" }
    public var keyPath: String { directory + "/\(baseName).key" }
    public var notAfter: Date { certificate.notValidAfter }

    /// Loads the CA in `directory`, or creates it (and the directory, 0700) when absent. With
    /// `pending`, a new CA stays in memory there until its files are committed: a run refused
    /// at preflight leaves no CA behind that a later run would take for the cluster's.
    public init(directory: String, commonName: String = "muster CA", baseName: String = "ca",
                pending: PendingCertificates? = nil) throws {
        self.directory = directory
        self.baseName = baseName
        let certificatePath = directory + "/\(baseName).crt", keyPath = directory + "/\(baseName).key"
        let manager = FileManager.default
        switch (manager.fileExists(atPath: certificatePath), manager.fileExists(atPath: keyPath)) {
        case (true, true):
            let pem = try PKIFiles.readText(certificatePath)
            let certificate = try X509Certificate(pem: pem, path: certificatePath)
            let key = try PKIFiles.readKey(keyPath)
            guard certificate.hasPublicKey(of: key) else {
                throw PKIError(path: keyPath, message: "does not match \(certificatePath)")
            }
            guard certificate.isCertificateAuthorityForLeavesOnly else {
                throw PKIError(path: certificatePath, message: "not a CA certificate")
            }
            self.certificate = certificate
            self.privateKey = key
            self.certificatePEM = pem
            self.created = false
        case (false, false):
            if pending == nil { try PKIFiles.makeDirectory(directory) }
            let key = try P256Key.generate()
            let now = Date()
            let request = CertificateRequest(
                organization: "muster", commonName: commonName,
                notBefore: now - 3600, notAfter: now + Double(CertificateAuthority.validityDays) * 86400,
                extensions: [(NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                             (NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"),
                             (NID_subject_key_identifier, "hash")])
            let certificate = try request.sign(key: key, issuer: nil, issuerKey: key)
            let pem = try certificate.pemRepresentation
            // Key first: a crash between the two writes leaves a key without a certificate,
            // which the next run reports instead of trusting a certificate without its key.
            if let pending {
                pending.add(key: try key.pemRepresentation, at: keyPath, certificate: pem, at: certificatePath, authority: true)
            } else {
                try PKIFiles.write(try key.pemRepresentation, to: keyPath, mode: 0o600)
                try PKIFiles.write(pem, to: certificatePath, mode: 0o644)
            }
            self.certificate = certificate
            self.privateKey = key
            self.certificatePEM = pem
            self.created = true
        case (true, false):
            throw PKIError(path: keyPath, message: "missing while \(certificatePath) exists; restore it or remove both to make a new CA (every member must then get new certificates)")
        case (false, true):
            throw PKIError(path: certificatePath, message: "missing while \(keyPath) exists; restore it or remove both to make a new CA")
        }
    }

    /// Signs a new key pair for `commonName` (nil: none) with the given subject alternative names. Entries of
    /// `dnsNames` that are IP addresses are put among the IP SANs (Go matches IPs only there).
    public func issue(kind: CertificateKind, commonName: String?, organizationalUnit: String? = nil,
                      dnsNames: [String], ipAddresses: [String], validityDays: Int = 825) throws -> IssuedCertificate {
        // Never past the CA's own end: a chain is only as valid as its shortest link.
        try Self.issue(kind: kind, commonName: commonName, organizationalUnit: organizationalUnit, dnsNames: dnsNames,
                       ipAddresses: ipAddresses, validityDays: validityDays, until: certificate.notValidAfter,
                       issuer: (certificate, privateKey))
    }

    /// A certificate signed by its own key: trusted only where its PEM is put among the trusted
    /// CAs (a member's gateway certificate, which its own client port alone trusts).
    public static func issueSelfSigned(kind: CertificateKind, organizationalUnit: String,
                                       validityDays: Int = 825) throws -> IssuedCertificate {
        try issue(kind: kind, commonName: nil, organizationalUnit: organizationalUnit, dnsNames: [], ipAddresses: [],
                  validityDays: validityDays, until: .distantFuture, issuer: nil)
    }

    private static func issue(kind: CertificateKind, commonName: String?, organizationalUnit: String?,
                              dnsNames: [String], ipAddresses: [String], validityDays: Int, until end: Date,
                              issuer: (certificate: X509Certificate, key: P256Key)?) throws -> IssuedCertificate {
        let sans = try SANs(dnsNames: dnsNames, ipAddresses: ipAddresses)
        let key = try P256Key.generate()
        let now = Date()
        let notAfter = min(now + Double(validityDays) * 86400, end)
        var extensions: [(nid: Int32, value: String)] = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),  // ECDSA: no key encipherment
            (NID_ext_key_usage, kind.extendedKeyUsages),
            (NID_subject_key_identifier, "hash"),
        ]
        if issuer != nil { extensions.append((NID_authority_key_identifier, "keyid:always")) }
        if !sans.isEmpty { extensions.append((NID_subject_alt_name, sans.configValue)) }
        let request = CertificateRequest(organization: "muster", commonName: commonName, organizationalUnit: organizationalUnit,
                                         notBefore: now - 3600, notAfter: notAfter, extensions: extensions)
        let issued = try request.sign(key: key, issuer: issuer?.certificate, issuerKey: issuer?.key ?? key)
        return IssuedCertificate(certificatePEM: try issued.pemRepresentation,
                                 privateKeyPEM: try key.pemRepresentation,
                                 notAfter: issued.notValidAfter)
    }

    /// Whether `certificate` carries this CA's signature and names it as issuer.
    func signed(_ certificate: X509Certificate) -> Bool {
        certificate.isSigned(by: self.certificate)
    }
}

/// A certificate's subject alternative names, normalised for comparison: DNS names lowercased,
/// IP addresses as their network-order bytes.
struct SANs: Equatable {
    var dnsNames: Set<String> = []
    var ipAddresses: Set<[UInt8]> = []

    var isEmpty: Bool { dnsNames.isEmpty && ipAddresses.isEmpty }

    init(dnsNames: [String], ipAddresses: [String]) throws {
        for name in dnsNames {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if let bytes = SANs.parseIP(trimmed) { self.ipAddresses.insert(bytes); continue }
            guard trimmed.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-.*_".contains($0)) }) else {
                throw PKIError(path: "", message: "\"\(name)\" is not a DNS name")
            }
            self.dnsNames.insert(trimmed.lowercased())
        }
        for address in ipAddresses {
            let trimmed = address.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let bytes = SANs.parseIP(trimmed) else {
                throw PKIError(path: "", message: "\"\(address)\" is not an IP address")
            }
            self.ipAddresses.insert(bytes)
        }
    }

    init(_ certificate: X509Certificate) {
        let names = certificate.subjectAlternativeNames
        dnsNames = Set(names.dnsNames.map { $0.lowercased() })
        ipAddresses = Set(names.ipAddresses)
    }

    /// subjectAltName in OpenSSL's configuration syntax (`DNS:a,IP:10.0.0.1`), sorted. Safe to
    /// hand to its parser: DNS names passed `init`'s character check (letters, digits, `-.*_`)
    /// and addresses are printed here from their bytes.
    var configValue: String {
        let names = dnsNames.sorted().map { "DNS:" + $0 }
        let addresses = ipAddresses.sorted { $0.lexicographicallyPrecedes($1) }
            .compactMap { SANs.text(ofAddress: $0).map { "IP:" + $0 } }
        return (names + addresses).joined(separator: ",")
    }

    /// 4 or 16 address bytes as inet_ntop prints them (`10.0.0.1`, `::1`).
    static func text(ofAddress bytes: [UInt8]) -> String? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard bytes.count == 4 || bytes.count == 16,
              bytes.withUnsafeBytes({ inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }) != nil else { return nil }
        return MusterPKI.text(ofCString: text)
    }

    /// IPv4 (4 bytes) or IPv6 (16 bytes), via inet_pton.
    static func parseIP(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        let unbracketed = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        if inet_pton(AF_INET6, unbracketed, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// Reading and writing PEM files with the right modes.
enum PKIFiles {
    static func readText(_ path: String) throws -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw PKIError(path: path, message: "cannot read: \(error.localizedDescription)")
        }
    }

    static func readKey(_ path: String) throws -> P256Key {
        try P256Key(pem: try readText(path), path: path)
    }

    /// Creates `path` (and missing parents) with mode 0700, and tightens it if it existed.
    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw PKIError(path: path, message: "cannot create directory: \(error.localizedDescription)")
        }
        guard chmod(path, 0o700) == 0 else {
            throw PKIError(path: path, message: "chmod 0700: \(String(cString: strerror(errno)))")
        }
    }

    /// Through `AtomicFile`, as every state write: readers see the old or the new file, and
    /// the new one is on disk before the run goes on.
    static func write(_ text: String, to path: String, mode: mode_t) throws {
        do { try AtomicFile.write(text.utf8, to: path, mode: mode) } catch {
            throw PKIError(path: path, message: error.message)
        }
    }
}
