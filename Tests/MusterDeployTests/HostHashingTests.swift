import Foundation
import Testing
import MusterBasics
import MusterTestSupport
@testable import MusterDeploy

/// The hosts' hash function gives the same SHA-256 through openssl and through coreutils, and
/// nothing for a file that is not there (which can never equal an expected hash).
@Suite struct HostHashingTests {
    /// The hash `muster_sha256_each FILE` prints, run by a local shell whose PATH is `path`.
    private func hash(_ file: String, path: String) throws -> String {
        let script = HostHashing.eachFunction + "\nmuster_sha256_each \"$1\""
        let line = try LocalProcess.run(["/bin/sh", "-c", script, "sh", file], environment: ["PATH": path]).stdoutText
        return line.isEmpty ? "" : String(line.split(separator: " ")[1]) + "\n"
    }

    @Test func opensslAndCoreutilsAgreeWithTheController() throws {
        let directory = try TemporaryDirectory(prefix: "muster-hash")
        let file = directory.path + "/payload"
        let bytes = Data((0..<250_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        try bytes.write(to: URL(fileURLWithPath: file))
        let expected = Digest.sha256Hex(bytes) + "\n"

        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "openssl is part of scripts/setup.sh")
        #expect(try hash(file, path: "/usr/bin:/bin") == expected, "through openssl")

        // A host without openssl: only coreutils' sha256sum and cut are on its PATH.
        let bin = directory.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["sha256sum", "cut"] {
            try FileManager.default.createSymbolicLink(atPath: "\(bin)/\(tool)", withDestinationPath: "/usr/bin/\(tool)")
        }
        #expect(try hash(file, path: bin) == expected, "through sha256sum")

        #expect(try hash(directory.path + "/missing", path: "/usr/bin:/bin").isEmpty)
        #expect(try hash(directory.path + "/missing", path: bin).isEmpty)
    }
}
