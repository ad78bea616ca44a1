internal import CLibCrypto
import Foundation

public enum Digest {
    /// Lowercase hex SHA-256, as `sha256sum` prints it.
    public static func sha256Hex(_ data: Data) -> String {
        hex(sha256(data))
    }

    /// SHA-256 of `data`.
    public static func sha256<D: DataProtocol>(_ data: D) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(data)
        return hasher.finalize()
    }

    /// SHA-256 of a file, read in chunks so a 20 MB binary is never held twice.
    public static func sha256Hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        let hasher = SHA256Hasher()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(chunk)
        }
        return hex(hasher.finalize())
    }

    /// The first 8 bytes of SHA-1, big-endian: how etcd derives member and cluster IDs.
    public static func sha1Prefix64(_ bytes: [UInt8]) -> UInt64 {
        SHA1.digest(bytes).prefix(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
    }

    /// HMAC-SHA1: how OpenSSH hashes host names in known_hosts (`|1|salt|hash`).
    public static func hmacSHA1(key: Data, message: Data) -> Data {
        hmac(EVP_sha1(), length: 20, key: key, message: message)
    }

    /// HMAC-SHA256: AWS Signature Version 4's signing key and signature.
    public static func hmacSHA256(key: Data, message: Data) -> Data {
        hmac(EVP_sha256(), length: 32, key: key, message: message)
    }

    private static func hmac(_ md: OpaquePointer?, length expected: UInt32, key: Data, message: Data) -> Data {
        var code = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = key.withUnsafeBytes { key in
            message.withUnsafeBytes { message in
                HMAC(md, key.baseAddress, Int32(key.count), message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                     message.count, &code, &length)
            }
        }
        precondition(done != nil && length == expected, "libcrypto's HMAC failed")
        return Data(code.prefix(Int(length)))
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(digest.underestimatedCount * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// SHA-256 fed in pieces (a file, a snapshot stream), on libcrypto's EVP interface.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto could not start a SHA-256 digest")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update<D: DataProtocol>(_ data: D) {
        for region in data.regions {
            region.withUnsafeBytes { bytes in update(bytes) }
        }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1, "libcrypto's SHA-256 failed")
    }

    /// The digest of what it was fed so far, and it goes on: one pass gives a snapshot's
    /// database digest (here, before the 32 bytes that end the file) and then the file's.
    public func digestSoFar() -> [UInt8] {
        guard let copy = EVP_MD_CTX_new() else { fatalError("libcrypto could not copy a SHA-256 digest") }
        defer { EVP_MD_CTX_free(copy) }
        precondition(EVP_MD_CTX_copy_ex(copy, context) == 1, "libcrypto could not copy a SHA-256 digest")
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(copy, &digest, &length) == 1 && length == 32, "libcrypto's SHA-256 failed")
        return digest
    }

    /// The 32-byte digest; the hasher is spent after this.
    public func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1 && length == 32, "libcrypto's SHA-256 failed")
        return digest
    }
}
