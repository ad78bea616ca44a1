import CLibCrypto

/// The primitives age is made of, on OpenSSL 3's libcrypto: X25519, HKDF-SHA-256 and
/// ChaCha20-Poly1305 (RFC 7539, 12-byte nonce, 16-byte tag); HMAC-SHA-256 is `Digest.hmacSHA256`.
enum Primitives {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func random(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw Failure(description: "libcrypto gave no random bytes") }
        return bytes
    }

    // MARK: X25519

    private static func key(private bytes: [UInt8]) throws -> OpaquePointer {
        guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, bytes, bytes.count) else {
            throw Failure(description: "not an X25519 private key")
        }
        return key
    }

    static func x25519Public(of privateKey: [UInt8]) throws -> [UInt8] {
        let key = try key(private: privateKey)
        defer { EVP_PKEY_free(key) }
        var bytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(key, &bytes, &length) == 1, length == 32 else {
            throw Failure(description: "cannot derive an X25519 public key")
        }
        return bytes
    }

    /// The shared secret; an all-zero one (a low-order point) is refused, as age requires.
    static func x25519(_ privateKey: [UInt8], _ publicKey: [UInt8]) throws -> [UInt8] {
        let mine = try key(private: privateKey)
        defer { EVP_PKEY_free(mine) }
        guard let theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, publicKey, publicKey.count) else {
            throw Failure(description: "not an X25519 public key")
        }
        defer { EVP_PKEY_free(theirs) }
        guard let context = EVP_PKEY_CTX_new(mine, nil) else { throw Failure(description: "X25519: no context") }
        defer { EVP_PKEY_CTX_free(context) }
        var secret = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer(context, theirs) == 1,
              EVP_PKEY_derive(context, &secret, &length) == 1, length == 32 else {
            throw Failure(description: "X25519 failed")
        }
        guard secret.contains(where: { $0 != 0 }) else { throw Failure(description: "X25519 gave the all-zero secret") }
        return secret
    }

    // MARK: HKDF and HMAC

    static func hkdf(key: [UInt8], salt: [UInt8], info: String, count: Int = 32) throws -> [UInt8] {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else { throw Failure(description: "HKDF: no context") }
        defer { EVP_PKEY_CTX_free(context) }
        let infoBytes = Array(info.utf8)
        var output = [UInt8](repeating: 0, count: count)
        var length = count
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_CTX_set_hkdf_md(context, EVP_sha256()) == 1,
              EVP_PKEY_CTX_set1_hkdf_salt(context, salt, Int32(salt.count)) == 1,
              EVP_PKEY_CTX_set1_hkdf_key(context, key, Int32(key.count)) == 1,
              EVP_PKEY_CTX_add1_hkdf_info(context, infoBytes, Int32(infoBytes.count)) == 1,
              EVP_PKEY_derive(context, &output, &length) == 1, length == count else {
            throw Failure(description: "HKDF-SHA-256 failed")
        }
        return output
    }

    // MARK: ChaCha20-Poly1305

    static func seal(key: [UInt8], nonce: [UInt8], _ plaintext: UnsafeRawBufferPointer) throws -> [UInt8] {
        try chacha(key: key, nonce: nonce, input: plaintext, tag: nil)
    }

    /// nil when the tag does not authenticate the ciphertext (a wrong key, or bytes changed).
    static func open(key: [UInt8], nonce: [UInt8], _ sealed: UnsafeRawBufferPointer) throws -> [UInt8]? {
        guard sealed.count >= 16 else { return nil }
        let tag = Array(sealed[(sealed.count - 16)...])
        return try? chacha(key: key, nonce: nonce, input: UnsafeRawBufferPointer(rebasing: sealed[..<(sealed.count - 16)]), tag: tag)
    }

    private static func chacha(key: [UInt8], nonce: [UInt8], input: UnsafeRawBufferPointer, tag: [UInt8]?) throws -> [UInt8] {
        guard let context = EVP_CIPHER_CTX_new() else { throw Failure(description: "ChaCha20-Poly1305: no context") }
        defer { EVP_CIPHER_CTX_free(context) }
        let encrypting: Int32 = tag == nil ? 1 : 0
        guard EVP_CipherInit_ex(context, EVP_chacha20_poly1305(), nil, nil, nil, encrypting) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, Int32(nonce.count), nil) == 1,
              EVP_CipherInit_ex(context, nil, nil, key, nonce, encrypting) == 1 else {
            throw Failure(description: "ChaCha20-Poly1305: cannot start")
        }
        var output = [UInt8](repeating: 0, count: input.count + 16)
        var length: Int32 = 0
        if input.count > 0 {
            guard EVP_CipherUpdate(context, &output, &length, input.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(input.count)) == 1 else {
                throw Failure(description: "ChaCha20-Poly1305 failed")
            }
        }
        var produced = Int(length)
        if var tag {
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, &tag) == 1 else { throw Failure(description: "tag") }
        }
        var final: Int32 = 0
        let finished = output.withUnsafeMutableBufferPointer { EVP_CipherFinal_ex(context, $0.baseAddress! + produced, &final) }
        guard finished == 1 else { throw Failure(description: "ChaCha20-Poly1305: not authentic") }
        produced += Int(final)
        if tag == nil {
            var computed = [UInt8](repeating: 0, count: 16)
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, &computed) == 1 else { throw Failure(description: "tag") }
            return Array(output[..<produced]) + computed
        }
        return Array(output[..<produced])
    }
}
