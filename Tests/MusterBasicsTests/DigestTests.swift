import CLibCrypto
import Foundation
import Testing
@testable import MusterBasics

/// The digests muster takes from libcrypto, and its own SHA-1 for etcd IDs, against published
/// vectors, coreutils and libcrypto.
@Suite struct DigestTests {
    @Test func sha256MatchesFIPS180Vectors() {
        #expect(Digest.sha256Hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let hasher = SHA256Hasher()
        hasher.update(Data("ab".utf8))
        hasher.update(Data("c".utf8))
        #expect(Digest.hex(hasher.finalize()) == Digest.sha256Hex(Data("abc".utf8)))
    }

    @Test func aFileHashedInChunksMatchesSha256sum() throws {
        let path = NSTemporaryDirectory() + "muster-digest-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Three and a half 1 MiB chunks of varied bytes.
        let bytes = Data((0..<(3 << 20) + (1 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) })
        try bytes.write(to: URL(fileURLWithPath: path))
        let coreutils = try LocalProcess.run(["/usr/bin/sha256sum", path], timeout: 30)
        #expect(coreutils.succeeded)
        let expected = String(coreutils.stdoutText.prefix(64))
        #expect(try Digest.sha256Hex(fileAt: path) == expected)
        #expect(Digest.sha256Hex(bytes) == expected)
    }

    @Test func sha1PrefixAndHMACMatchPublishedVectors() {
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d (FIPS 180).
        #expect(Digest.sha1Prefix64(Array("abc".utf8)) == 0xa999_3e36_4706_816a)
        // RFC 2202, HMAC-SHA1 test case 2.
        let code = Digest.hmacSHA1(key: Data("Jefe".utf8), message: Data("what do ya want for nothing?".utf8))
        #expect(Digest.hex(code) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    }

    @Test func etcdIDsSHA1MatchesFIPSVectors() {
        #expect(Digest.hex(SHA1.digest([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(Digest.hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Digest.hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
            == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Digest.hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
            == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// Every length across the padding's boundaries (55, 56, 64 bytes and their multiples),
    /// against libcrypto's SHA-1.
    @Test func etcdIDsSHA1AgreesWithLibcryptoAtEveryPaddingBoundary() {
        for length in 0...200 {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ length) }
            #expect(Digest.hex(SHA1.digest(message)) == Digest.hex(libcryptoSHA1(message)), "length \(length)")
        }
    }

    private func libcryptoSHA1(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &digest, &length, EVP_sha1(), nil) }
        precondition(done == 1 && length == 20)
        return Array(digest.prefix(20))
    }
}
