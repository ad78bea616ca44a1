import Foundation
import MusterSSH
import Testing

/// Not a test: upload throughput against `scp` of the same file to the same sshd, as a ratio.
/// Run with `MUSTER_SSH_BENCH=1 swift test --filter uploadThroughputVersusScp`.
@Test(.enabled(if: ProcessInfo.processInfo.environment["MUSTER_SSH_BENCH"] == "1"))
func uploadThroughputVersusScp() async throws {
    let sshd = try await SSHDFixture.start()
    let local = "\(sshd.directory)/bench.bin"
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<(20 << 17)).map { _ in generator.next() as UInt64 }
    try bytes.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: local)) }
    let session = try await sshd.connect()
    var ours = [Double](), scp = [Double]()
    for round in 0..<3 {
        var start = Date()
        _ = try await session.upload(from: local, to: "\(sshd.directory)/ours\(round).bin", mode: 0o644)
        ours.append(Date().timeIntervalSince(start))
        start = Date()
        _ = try await offPool {
            try Child.run(["scp", "-q", "-i", sshd.clientKey, "-P", String(sshd.port),
                           "-o", "UserKnownHostsFile=\(sshd.knownHosts)", "-o", "BatchMode=yes",
                           local, "root@127.0.0.1:\(sshd.directory)/scp\(round).bin"])
        }
        scp.append(Date().timeIntervalSince(start))
    }
    let best = (ours.min()!, scp.min()!)
    print(String(format: "upload 20 MiB: muster %.3f s, scp %.3f s, muster/scp time ratio %.2f",
                 best.0, best.1, best.0 / best.1))
}
