import Foundation
import Testing
import MusterBasics
import MusterEtcd
import MusterWorkspace
import MusterSandbox

/// Progress of long transfers as a person sees it: `snapshot save` and `restore` run under a
/// pseudo-terminal (util-linux's `script`) redraw a meter in place (bytes, rate; the last frame
/// kept with its time), and draw none with `--output json` or when their output is a pipe.
@Suite struct TransferProgressTests {
    /// The command's terminal output, as `script` recorded it.
    private func onTerminal(_ arguments: [String]) throws -> (status: Int32, text: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_SANDBOX_ONLY"] = "1"
        let command = ([MusterCLI.binary] + arguments + ["--templates", repositoryRoot + "/templates"]).map(Shell.quote).joined(separator: " ")
        let run = try LocalProcess.run(["/usr/bin/script", "-q", "-e", "-c", command, "/dev/null"], environment: environment, timeout: 300)
        return (run.status, run.stdoutText)
    }

    @Test func snapshotSaveAndRestoreRedrawAMeterOnATerminalOnly() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let inventory = builder.inventoryPath
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok })
            let client = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host1").address):2379", timeout: 20)
            let value = String(repeating: "m", count: 1 << 20)
            for index in 0..<24 { _ = try await client.put("/progress/\(index)", value) }

            let saved = try onTerminal(["snapshot", "save", inventory])
            #expect(saved.status == 0, "\(saved.text)")
            let frames = saved.text.components(separatedBy: "\r\u{1B}[K").filter { $0.hasPrefix("snapshot main from ") }
            #expect(!frames.isEmpty, "no meter frame in \(saved.text.debugDescription)")
            #expect(frames.last?.contains(" MiB / ") == true && frames.last?.contains(" in ") == true && frames.last?.contains("MiB/s") == true,
                    "the last frame stays with its total, rate and time: \(frames)")
            let file = saved.text.split(separator: "\n").compactMap { line -> String? in
                guard let range = line.range(of: ", /") else { return nil }
                return String(line[range.upperBound...].prefix { $0 != " " }).trimmingCharacters(in: .whitespaces)
            }.first.map { "/" + $0 }
            let snapshot = try #require(file, "no snapshot path in \(saved.text)")

            let json = try onTerminal(["snapshot", "save", inventory, "--output", "json"])
            #expect(json.status == 0 && !json.text.contains("\u{1B}[K") && !json.text.contains("MiB/s"), "\(json.text.debugDescription)")
            let piped = try MusterCLI.run(["snapshot", "save", inventory])
            #expect(piped.status == 0 && !(piped.stdoutText + piped.stderrText).contains("\u{1B}[K"), "nothing drawn into a pipe")

            let restored = try onTerminal(["restore", inventory, "--from", snapshot, "--force"])
            #expect(restored.status == 0, "\(restored.text)")
            let shipped = restored.text.components(separatedBy: "\r\u{1B}[K").filter { $0.contains(".db to 3 hosts") }
            #expect(shipped.last?.contains(" in ") == true, "the snapshot's way to the hosts: \(restored.text.debugDescription)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
