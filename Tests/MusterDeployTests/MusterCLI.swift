import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MusterBasics
import MusterWorkspace
import MusterSandbox

/// The built `muster` CLI run on a sandbox inventory with failpoints honoured
/// (`MUSTER_SANDBOX_ONLY=1`): what an operator runs, cut where a test says.
enum MusterCLI {
    static var binary: String { repositoryRoot + "/.build/debug/muster" }

    static func up(_ builder: PlanBuilder, failpoint: String? = nil, timeout: TimeInterval = 120) throws -> ProcessResult {
        try run(["up", builder.inventoryPath], failpoint: failpoint, timeout: timeout)
    }

    /// Any command (`["defrag", INVENTORY, "--output", "json"]`), with the repository's templates.
    /// `up` skips its disk check unless `diskCheck`: a scenario's outcome must not hang on the
    /// CI machine's disk (DiskCheckTests measure on devices of their own).
    static func run(_ arguments: [String], failpoint: String? = nil, diskCheck: Bool = false, timeout: TimeInterval = 120) throws -> ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SandboxError("\(binary) is missing: `swift build` first (this test runs the CLI)")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_SANDBOX_ONLY"] = "1"
        environment["MUSTER_FAILPOINT"] = failpoint
        let skip = arguments.first == "up" && !diskCheck ? ["--skip-disk-check"] : []
        return try LocalProcess.run([binary] + arguments + skip + ["--templates", repositoryRoot + "/templates"],
                                    environment: environment, timeout: timeout)
    }

    /// `up` stopped at `phase` (`PHASE:stop`): `whilePaused` does its fault while muster is
    /// stopped exactly there, then muster goes on (SIGCONT); returns how the run ended.
    static func up(_ builder: PlanBuilder, pausedAt phase: String, whilePaused: () throws -> Void) async throws -> ProcessResult {
        let run = Task.detached { try up(builder, failpoint: phase + ":stop") }
        // Bounded: 60 s for the run to reach the phase (it ends on its own if it never does).
        var paused: Int32?
        for _ in 0..<600 {
            paused = stoppedUp(of: builder)
            if paused != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard let pid = paused else {
            let result = try await run.value
            throw SandboxError("muster up never stopped at \(phase): exit \(result.status)\n\(result.stderrText)")
        }
        defer { kill(pid, SIGCONT) }
        try whilePaused()
        kill(pid, SIGCONT)
        return try await run.value
    }

    /// The pid of a stopped (`T`) `muster up` on this builder's inventory, whose path is unique.
    private static func stoppedUp(of builder: PlanBuilder) -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            if arguments.first == binary, arguments.dropFirst().first == "up", arguments.contains(builder.inventoryPath), state == "T" {
                return pid
            }
        }
        return nil
    }
}
