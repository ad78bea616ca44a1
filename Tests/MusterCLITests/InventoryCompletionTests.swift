import Foundation
import Testing

/// bash's completion of `--cluster` and `--member`, through the script muster generates, with the
/// built binary answering: names come from the inventory on the same command line.
@Suite struct InventoryCompletionTests {
    /// COMPREPLY after completing the line's last (empty or partial) word.
    private func complete(_ words: [String], in directory: String) throws -> [String] {
        let binary = try MusterBinary()
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let script = """
            PATH=\(URL(fileURLWithPath: binary.path).deletingLastPathComponent().path):$PATH
            source <(muster --generate-completion-script bash) || exit 9
            COMP_WORDS=(\(quoted))
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            COMP_LINE="${COMP_WORDS[*]}"
            COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            _muster muster "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: data, as: UTF8.self))")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).sorted()
    }

    @Test func clusterAndMemberNamesComeFromTheInventoryOnTheLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-completion-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("""
            member: { version: 3.5.16 }
            hosts:
              alpha: { address: 10.9.0.1 }
              beta: { address: 10.9.0.2 }
              gamma: { address: 10.9.0.3 }
            clusters:
              events: { members: [alpha] }
              main: { members: [beta, gamma] }
              metrics: { members: [alpha, gamma], client_port: 2479, peer_port: 2480 }

            """.utf8).write(to: URL(fileURLWithPath: directory + "/site.yml"))
        #expect(try complete(["muster", "verify", "site.yml", "--cluster", ""], in: directory) == ["events", "main", "metrics"])
        #expect(try complete(["muster", "up", "site.yml", "--cluster", "m"], in: directory) == ["main", "metrics"])
        #expect(try complete(["muster", "replace", "site.yml", "--cluster", "main", "--member", ""], in: directory) == ["beta", "gamma"])
        #expect(try complete(["muster", "snapshot", "save", "site.yml", "--member", ""], in: directory) == ["alpha", "beta", "gamma"])
        // No inventory on the line, or one that does not load: nothing, never an error.
        #expect(try complete(["muster", "verify", "--cluster", ""], in: directory) == [])
        try Data("clusters: [".utf8).write(to: URL(fileURLWithPath: directory + "/broken.yml"))
        #expect(try complete(["muster", "verify", "broken.yml", "--cluster", ""], in: directory) == [])
    }
}
