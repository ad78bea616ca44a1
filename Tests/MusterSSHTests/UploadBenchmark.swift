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

/// Not a test: N sessions running a short command at once against one session running it N
/// times, as a ratio (how much the per-host lanes overlap on this machine).
/// Run with `MUSTER_SSH_BENCH=1 swift test --filter parallelSessionsVersusOne`.
@Test(.enabled(if: ProcessInfo.processInfo.environment["MUSTER_SSH_BENCH"] == "1"))
func parallelSessionsVersusOne() async throws {
    let sshd = try await SSHDFixture.start()
    let count = 8
    var sessions: [SSHSession] = []
    for _ in 0..<count { sessions.append(try await sshd.connect()) }
    let command = ProcessInfo.processInfo.environment["MUSTER_SSH_BENCH_COMMAND"] ?? "sleep 0.2; head -c 1000000 /dev/zero | sha256sum"
    var serial = [Double](), parallel = [Double]()
    for _ in 0..<3 {
        var start = Date()
        for _ in 0..<count { _ = try await sessions[0].run(command) }
        serial.append(Date().timeIntervalSince(start))
        start = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in sessions { group.addTask { _ = try await session.run(command) } }
            try await group.waitForAll()
        }
        parallel.append(Date().timeIntervalSince(start))
    }
    for session in sessions { await session.close() }
    let ratios = zip(serial, parallel).map { $0 / $1 }.sorted()
    print(String(format: "%d commands: one session %.3f s, %d sessions %.3f s, speed-up (median of paired runs) %.2f",
                 count, serial.sorted()[1], count, parallel.sorted()[1], ratios[1]))
}
