import Foundation
import Testing
import MusterBasics
import MusterTestSupport
@testable import MusterDeploy

/// The controller's zstd copy of a binary is checked against its seal before every use: one
/// altered in place (even into a valid zstd frame of other bytes) is made anew, and a copy from
/// before seals is trusted only once it unpacks to the binary's hash.
@Suite struct BinaryCacheTests {
    /// What the zstd file at `path` unpacks to, hashed.
    private func unpackedHash(_ path: String) throws -> String {
        let result = try LocalProcess.run(["/bin/sh", "-c", "zstd -q -d -c -- \"$1\" | sha256sum", "sh", path])
        return String(result.stdoutText.prefix(64))
    }

    private func inode(_ path: String) throws -> UInt64? {
        try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64
    }

    @Test func aCacheFileAlteredInPlaceIsDetectedAndRebuilt() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-cache")
        let source = directory.path + "/etcd"
        let bytes = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) })
        try bytes.write(to: URL(fileURLWithPath: source))
        let binary = try ShippedBinary(localPath: source, remotePath: "/opt/muster/bin/etcd")
        let cache = directory.path + "/cache"
        let first = try #require(await BinaryCache.compressedCopy(of: binary, cache: cache))
        #expect(try unpackedHash(first) == binary.sha256)
        let firstInode = try inode(first)

        // Reused untouched while it is intact.
        #expect(await BinaryCache.compressedCopy(of: binary, cache: cache) == first)
        #expect(try inode(first) == firstInode)

        // Overwritten in place (same inode) with a well-formed zstd of other bytes: zstd's own
        // checksum is happy with it, only the hash of what it unpacks to tells.
        let other = directory.path + "/other"
        try Data(repeating: 0x41, count: bytes.count).write(to: URL(fileURLWithPath: other))
        _ = try LocalProcess.run(["zstd", "-q", "-f", other, "-o", other + ".zst"])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: first))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: try Data(contentsOf: URL(fileURLWithPath: other + ".zst")))
        try handle.close()
        #expect(try inode(first) == firstInode)
        #expect(try unpackedHash(first) != binary.sha256)

        let again = try #require(await BinaryCache.compressedCopy(of: binary, cache: cache))
        #expect(again == first)
        #expect(try unpackedHash(again) == binary.sha256, "the altered copy was used as is")

        // A flipped byte (zstd's frame checksum would catch it only on the host) is rebuilt too.
        var damaged = try Data(contentsOf: URL(fileURLWithPath: again))
        damaged[damaged.count / 2] ^= 0xff
        try damaged.write(to: URL(fileURLWithPath: again))
        let third = try #require(await BinaryCache.compressedCopy(of: binary, cache: cache))
        #expect(try unpackedHash(third) == binary.sha256)
    }

    @Test func aCopyWithoutItsSealIsTrustedOnlyByWhatItUnpacksTo() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-cache")
        let source = directory.path + "/etcd"
        try Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }).write(to: URL(fileURLWithPath: source))
        let binary = try ShippedBinary(localPath: source, remotePath: "/opt/muster/bin/etcd")
        let cache = directory.path + "/cache"
        let copy = try #require(await BinaryCache.compressedCopy(of: binary, cache: cache))
        let seal = BinaryCache.sealPath(of: copy)
        #expect(try String(contentsOfFile: seal, encoding: .utf8) == (try Digest.sha256Hex(fileAt: copy)) + "\n")

        // An intact copy that lost its seal is kept, and sealed again.
        try FileManager.default.removeItem(atPath: seal)
        let firstInode = try inode(copy)
        #expect(await BinaryCache.compressedCopy(of: binary, cache: cache) == copy)
        #expect(try inode(copy) == firstInode, "an intact copy is not remade")
        #expect(FileManager.default.fileExists(atPath: seal))

        // A seal that does not match the copy's bytes sends it back to the unpacking check.
        try Data("0000\n".utf8).write(to: URL(fileURLWithPath: seal))
        #expect(await BinaryCache.compressedCopy(of: binary, cache: cache) == copy)
        #expect(try unpackedHash(copy) == binary.sha256)
        #expect(await BinaryCache.isSealed(copy))
    }
}
