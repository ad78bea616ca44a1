internal import CLibCrypto
import Foundation

// Owners of libcrypto's objects: each frees its pointer once, and none is mutated after it is
// made, so sharing them between tasks is safe (libcrypto locks its own caches).

/// libcrypto's most recent error for this thread, as one line; clears the queue.
func libcryptoError(_ context: String) -> String {
    var reason = ""
    while case let code = ERR_get_error(), code != 0 {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        if reason.isEmpty { reason = text(ofCString: buffer) }
    }
    return reason.isEmpty ? context : "\(context): \(reason)"
}

/// A NUL-terminated buffer libcrypto filled.
func text(ofCString buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Reads what a memory BIO holds, then frees it.
private func drain(_ bio: OpaquePointer) -> String {
    defer { BIO_free(bio) }
    var data: UnsafeMutablePointer<CChar>?
    let length = muster_bio_mem_data(bio, &data)
    guard let data, length > 0 else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
}

/// A read-only memory BIO over `text`, for the PEM readers.
private func withBIO<T>(_ text: String, _ body: (OpaquePointer) -> T?) -> T? {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { raw in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
        defer { BIO_free(bio) }
        return body(bio)
    }
}

/// An ECDSA P-256 key pair.
final class P256Key: @unchecked Sendable {
    let pointer: OpaquePointer

    private init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    static func generate() throws -> P256Key {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else {
            throw PKIError(path: "", message: libcryptoError("cannot make an EC key context"))
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(context, &key) == 1, let key else {
            throw PKIError(path: "", message: libcryptoError("cannot generate a P-256 key"))
        }
        return P256Key(key)
    }

    /// A PEM private key (PKCS#8 or SEC1), refused unless it is EC on P-256.
    init(pem: String, path: String) throws {
        guard let key = withBIO(pem, { PEM_read_bio_PrivateKey($0, nil, nil, nil) }) else {
            throw PKIError(path: path, message: libcryptoError("not a PEM ECDSA P-256 private key"))
        }
        var curve = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_EC,
              EVP_PKEY_get_group_name(key, &curve, curve.count, &length) == 1,
              text(ofCString: curve) == "prime256v1" else {
            EVP_PKEY_free(key)
            ERR_clear_error()
            throw PKIError(path: path, message: "not a PEM ECDSA P-256 private key")
        }
        pointer = key
    }

    /// PKCS#8 (`BEGIN PRIVATE KEY`), which etcd, Go and NIOSSL all read.
    var pemRepresentation: String {
        get throws {
            guard let bio = BIO_new(BIO_s_mem()) else { throw PKIError(path: "", message: libcryptoError("BIO_new")) }
            guard PEM_write_bio_PrivateKey(bio, pointer, nil, nil, 0, nil, nil) == 1 else {
                BIO_free(bio)
                throw PKIError(path: "", message: libcryptoError("cannot write a private key"))
            }
            return drain(bio)
        }
    }
}

/// An X.509 certificate, parsed or freshly signed.
final class X509Certificate: @unchecked Sendable {
    let pointer: OpaquePointer

    init(owning pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_free(pointer) }

    convenience init(pem: String, path: String) throws {
        guard let certificate = withBIO(pem, { PEM_read_bio_X509($0, nil, nil, nil) }) else {
            throw PKIError(path: path, message: libcryptoError("not a PEM certificate"))
        }
        self.init(owning: certificate)
    }

    var pemRepresentation: String {
        get throws {
            guard let bio = BIO_new(BIO_s_mem()) else { throw PKIError(path: "", message: libcryptoError("BIO_new")) }
            guard PEM_write_bio_X509(bio, pointer) == 1 else {
                BIO_free(bio)
                throw PKIError(path: "", message: libcryptoError("cannot write a certificate"))
            }
            return drain(bio)
        }
    }

    var notValidBefore: Date { X509Certificate.date(X509_get0_notBefore(pointer)) }
    var notValidAfter: Date { X509Certificate.date(X509_get0_notAfter(pointer)) }

    private static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return .distantPast }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    func hasPublicKey(of key: P256Key) -> Bool {
        guard let own = X509_get0_pubkey(pointer) else { return false }
        return EVP_PKEY_eq(own, key.pointer) == 1
    }

    /// A CA that may sign only end-entity certificates (basicConstraints CA:TRUE, pathlen:0).
    var isCertificateAuthorityForLeavesOnly: Bool {
        X509_get_extension_flags(pointer) & UInt32(EXFLAG_CA) != 0 && X509_get_pathlen(pointer) == 0
    }

    /// Names `issuer`'s subject as its issuer and carries its signature.
    func isSigned(by issuer: X509Certificate) -> Bool {
        guard X509_NAME_cmp(X509_get_issuer_name(pointer), X509_get_subject_name(issuer.pointer)) == 0,
              let key = X509_get0_pubkey(issuer.pointer) else { return false }
        let verified = X509_verify(pointer, key) == 1
        ERR_clear_error()
        return verified
    }

    /// The subject's common names (muster writes exactly one).
    var commonNames: [String] {
        guard let subject = X509_get_subject_name(pointer) else { return [] }
        var names: [String] = [], index: Int32 = -1
        while true {
            index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)
            guard index >= 0, let entry = X509_NAME_get_entry(subject, index) else { break }
            var text: UnsafeMutablePointer<UInt8>?
            let length = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(entry))
            if let text, length >= 0 {
                names.append(String(decoding: UnsafeBufferPointer(start: text, count: Int(length)), as: UTF8.self))
                CRYPTO_free(text, #fileID, #line)
            }
        }
        return names
    }

    /// libcrypto's XKU_* flags of the extended key usages; nil without the extension.
    var extendedKeyUsageFlags: UInt32? {
        let flags = X509_get_extended_key_usage(pointer)
        return flags == UInt32.max ? nil : flags
    }

    /// DNS names (as written) and IP addresses (4 or 16 bytes) of subjectAltName.
    var subjectAlternativeNames: (dnsNames: [String], ipAddresses: [[UInt8]]) {
        guard let raw = X509_get_ext_d2i(pointer, NID_subject_alt_name, nil, nil) else { return ([], []) }
        let names = OpaquePointer(raw)
        defer { muster_general_names_free(names) }
        var dns: [String] = [], ips: [[UInt8]] = []
        for index in 0..<muster_general_names_count(names) {
            guard let name = muster_general_names_at(names, index) else { continue }
            var bytes: UnsafePointer<UInt8>?
            var length: Int32 = 0
            let kind = muster_general_name(name, &bytes, &length)
            guard let bytes, length >= 0 else { continue }
            let value = Array(UnsafeBufferPointer(start: bytes, count: Int(length)))
            if kind == GEN_DNS { dns.append(String(decoding: value, as: UTF8.self)) }
            if kind == GEN_IPADD { ips.append(value) }
        }
        return (dns, ips)
    }
}

/// What a new certificate says, before it is signed.
struct CertificateRequest {
    var organization: String
    /// nil: no CN at all (a member's certificates: etcd takes a client certificate's CN for a
    /// user name, and the empty name is the one no etcd user can have).
    var commonName: String?
    /// Who the certificate is for, for people reading it (etcd reads no OU).
    var organizationalUnit: String? = nil
    var notBefore: Date
    var notAfter: Date
    /// Extensions in OpenSSL's configuration syntax, by NID, in order
    /// (`basicConstraints = critical,CA:TRUE,pathlen:0` is `(NID_basic_constraints, "critical,CA:TRUE,pathlen:0")`).
    /// Every value is muster's own text or a name SANs validated: no commas, colons or quotes
    /// from outside reach the parser.
    var extensions: [(nid: Int32, value: String)]

    /// Signs the request for `key` with `issuerKey`, as `issuer` (nil: self-signed), SHA-256.
    func sign(key: P256Key, issuer: X509Certificate?, issuerKey: P256Key) throws -> X509Certificate {
        guard let certificate = X509_new() else { throw PKIError(path: "", message: libcryptoError("X509_new")) }
        let made = X509Certificate(owning: certificate)
        guard X509_set_version(certificate, 2) == 1 else { throw PKIError(path: "", message: libcryptoError("X509_set_version")) }
        try setRandomSerial(certificate)
        guard let name = X509_NAME_new() else { throw PKIError(path: "", message: libcryptoError("X509_NAME_new")) }
        defer { X509_NAME_free(name) }
        let entries = [(NID_organizationName, organization)] + (organizationalUnit.map { [(NID_organizationalUnitName, $0)] } ?? [])
            + (commonName.map { [(NID_commonName, $0)] } ?? [])
        for (nid, value) in entries {
            guard X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, value, -1, -1, 0) == 1 else {
                throw PKIError(path: "", message: libcryptoError("cannot set the subject"))
            }
        }
        guard X509_set_subject_name(certificate, name) == 1,
              X509_set_issuer_name(certificate, issuer.map { X509_get_subject_name($0.pointer) } ?? name) == 1,
              ASN1_TIME_set(X509_getm_notBefore(certificate), time_t(notBefore.timeIntervalSince1970)) != nil,
              ASN1_TIME_set(X509_getm_notAfter(certificate), time_t(notAfter.timeIntervalSince1970)) != nil,
              X509_set_pubkey(certificate, key.pointer) == 1 else {
            throw PKIError(path: "", message: libcryptoError("cannot fill in the certificate"))
        }
        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer?.pointer ?? certificate, certificate, nil, nil, 0)
        for (nid, value) in extensions {
            guard let extensionValue = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                throw PKIError(path: "", message: libcryptoError("cannot make extension \(String(cString: OBJ_nid2sn(nid))) = \(value)"))
            }
            defer { X509_EXTENSION_free(extensionValue) }
            guard X509_add_ext(certificate, extensionValue, -1) == 1 else {
                throw PKIError(path: "", message: libcryptoError("cannot add extension \(String(cString: OBJ_nid2sn(nid)))"))
            }
        }
        guard X509_sign(certificate, issuerKey.pointer, EVP_sha256()) > 0 else {
            throw PKIError(path: "", message: libcryptoError("cannot sign the certificate"))
        }
        return made
    }

    /// 159 random bits: positive, at most 20 bytes, unguessable (RFC 5280 4.1.2.2).
    private func setRandomSerial(_ certificate: OpaquePointer) throws {
        guard let number = BN_new() else { throw PKIError(path: "", message: libcryptoError("BN_new")) }
        defer { BN_free(number) }
        guard BN_rand(number, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
              BN_to_ASN1_INTEGER(number, X509_get_serialNumber(certificate)) != nil else {
            throw PKIError(path: "", message: libcryptoError("cannot make a serial number"))
        }
    }
}
