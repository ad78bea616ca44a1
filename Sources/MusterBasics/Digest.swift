import Crypto
import Foundation

public enum Digest {
    /// Lowercase hex SHA-256, as `sha256sum` prints it.
    public static func sha256Hex(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// SHA-256 of a file, read in chunks so a 20 MB binary is never held twice.
    public static func sha256Hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The first 8 bytes of SHA-1, big-endian: how etcd derives member and cluster IDs.
    public static func sha1Prefix64(_ bytes: [UInt8]) -> UInt64 {
        let digest = Array(Insecure.SHA1.hash(data: bytes))
        return digest.prefix(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
    }

    /// HMAC-SHA1: how OpenSSH hashes host names in known_hosts (`|1|salt|hash`).
    public static func hmacSHA1(key: Data, message: Data) -> Data {
        Data(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }
}
