import Foundation
import MusterTestSupport
import Testing

/// One test per exit-code class of the README's contract, on the built binary: 2 for bad input
/// and usage (before any host is contacted), 1 for a failed step, check or refusal; and the one
/// JSON error document with `--output json`.
@Suite struct ExitCodeTests {
    private func inventory(_ text: String) throws -> (path: String, directory: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/inventory.yml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return (path, directory)
    }

    private let oneCluster = """
        member: { version: 3.4.23 }
        hosts:
          h1: { address: 127.0.0.1 }
        clusters:
          main: { members: [h1], tls: false }

        """

    private let twoClusters = """
        member: { version: 3.4.23 }
        hosts:
          h1: { address: 127.0.0.1 }
        clusters:
          main: { members: [h1], tls: false }
          other: { members: [h1], tls: false, client_port: 3379, peer_port: 3380 }

        """

    /// Discovery's size counts while the cluster forms: an unformed cluster with more members
    /// is bad input at the bootstrap's place, before anything else.
    @Test func aDiscoverySizeBelowTheMembersOfAnUnformedClusterExits2AtItsPlace() throws {
        let (path, directory) = try inventory("""
            member: { version: 3.4.23 }
            hosts:
              h1: { address: 127.0.0.1 }
              h2: { address: 127.0.0.2 }
            clusters:
              main:
                members: [h1, h2]
                tls: false
                bootstrap: { discovery: { url: http://127.0.0.1:2379, size: 1 } }

            """)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try MusterBinary().run(["render", path, "--state", directory + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("\(path):9:16: error: discovery size 1 of cluster 'main' is smaller than its 2 members"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/state"), "a refused inventory left a state dir")
    }

    /// A dry run prints its steps as text: asked for JSON, it is a usage error (exit 2) before
    /// anything is read, for `restore`, `defrag` and `snapshot save` alike.
    @Test(arguments: [["restore", "INVENTORY", "--from", "/nonexistent.db"], ["defrag", "INVENTORY"], ["snapshot", "save", "INVENTORY"]])
    func aDryRunAskedForJSONExits2(_ command: [String]) throws {
        let (path, directory) = try inventory(oneCluster)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try MusterBinary().run(command.map { $0 == "INVENTORY" ? path : $0 } + ["--dry-run", "--output", "json", "--state", directory + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("--dry-run prints its steps as text"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/state"))
    }

    /// A `--from` file whose bbolt pages name a page near 2^63 (its digest damaged too, as a
    /// damaged file's is): refused as damaged with exit 1, before any host; muster does not crash.
    @Test func restoreFromASnapshotWithADamagedPageIdExits1AsDamaged() throws {
        let file = try inventory(oneCluster.replacingOccurrences(of: "h1: { address: 127.0.0.1 }", with: "h1: { address: 127.0.0.1, ssh: { port: 1 } }"))
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        var image = BoltImage()
        image.keyBucketRoot = (UInt64(1) << 63) - 1
        let snapshot = file.directory + "/damaged.db"
        try Data(image.bytes + [UInt8](repeating: 0xAB, count: 32)).write(to: URL(fileURLWithPath: snapshot))
        let run = try MusterBinary().run(["restore", file.path, "--from", snapshot])
        #expect(run.status == 1, "\(run)")
        #expect(run.stderrText.contains("\(snapshot) is damaged"), "\(run)")
        #expect(run.stderrText.contains("nothing was changed on any host") && !run.stderrText.contains("connect"), "\(run)")
    }

    @Test(arguments: [
        ["frobnicate"],                        // unknown subcommand
        ["up"],                                // missing inventory argument
        ["verify", "x.yml", "--output", "yaml"],  // bad option value
        ["render", "/nonexistent/inventory.yml"],  // inventory that does not exist
    ])
    func usageErrorsExit2(_ arguments: [String]) throws {
        let run = try MusterBinary().run(arguments)
        #expect(run.status == 2, "\(run)")
        #expect(!run.stderrText.isEmpty, "\(run)")
    }

    @Test func anUnknownClusterExits2NamingTheClusters() throws {
        let file = try inventory(oneCluster)
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        for command in ["render", "up", "verify", "down", "env"] {
            let run = try MusterBinary().run([command, file.path, "--cluster", "nope"])
            #expect(run.status == 2, "\(command): \(run)")
            #expect(run.stderrText.contains("no cluster 'nope'") && run.stderrText.contains("main"), "\(command): \(run)")
        }
    }

    @Test func aMissingMemberBinaryExits2AtItsPlaceInTheInventory() throws {
        let file = try inventory(oneCluster.replacingOccurrences(of: "member: { version: 3.4.23 }", with: "member: { binary: /nonexistent/etcd }"))
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["render", file.path, "--out", file.directory + "/out"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("\(file.path):1:"), "\(run)")
        #expect(run.stderrText.contains("/nonexistent/etcd"), "\(run)")
    }

    /// What reaches the terminal from elsewhere (here a path given on the command line, as
    /// remote stderr and etcd's error text do) cannot drive it: ESC and BEL are shown as `\x1b`,
    /// `\x07`. (The inventory's own values refuse control characters at their key.)
    @Test func controlCharactersInAnErrorAreShownEscaped() throws {
        let run = try MusterBinary().run(["render", NSTemporaryDirectory() + "/muster-nowhere/\u{1b}]0;owned\u{07}\u{1b}[2J.yml"])
        #expect(run.status == 2, "\(run.status)")
        #expect(!run.stderr.contains(0x1b) && !run.stderr.contains(0x07), "control characters reached the terminal")
        #expect(run.stderrText.contains(#"\x1b]0;owned\x07\x1b[2J.yml"#), "\(run.stderrText.debugDescription)")
    }

    @Test func aMissingIdentityFileExits2BeforeAnyHostIsContacted() throws {
        let file = try inventory(oneCluster.replacingOccurrences(of: "h1: { address: 127.0.0.1 }", with: "h1: { address: 127.0.0.1, ssh: { identity: /nonexistent/key, port: 1 } }"))
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["up", file.path])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("\(file.path):3:"), "\(run)")
        #expect(!run.stderrText.contains("connect"), "nothing may be contacted: \(run)")
    }

    @Test func aStepThatFailsOnAHostExits1WithOneJSONErrorDocument() throws {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let file = try inventory(oneCluster.replacingOccurrences(of: "h1: { address: 127.0.0.1 }", with: "h1: { address: 127.0.0.1, ssh: { port: 1 } }"))
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["up", file.path, "--output", "json"])
        #expect(run.status == 1, "\(run)")
        let document = try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any]
        let error = document?["error"] as? [String: Any]
        #expect(error?["kind"] as? String == "host", "\(run)")
        #expect(error?["host"] as? String == "h1", "\(run)")
        #expect(error?["step"] as? String == "connect", "\(run)")
        // The host and step are said once, in their fields, not again at the message's start.
        let message = error?["message"] as? String ?? ""
        #expect(message.hasPrefix("cannot connect to 127.0.0.1:1"), "\(message)")
        // Each host's error once.
        #expect(run.stderrText.components(separatedBy: "refused").count - 1 == 1, "\(run)")
    }

    @Test func aMisspeltClusterIsNamedWithTheNearestOne() throws {
        let file = try inventory(oneCluster)
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["render", file.path, "--cluster", "mian", "--out", file.directory + "/out"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("no cluster 'mian'") && run.stderrText.contains("did you mean 'main'?"), "\(run)")
    }

    @Test func anEvenMemberCountIsPointedOut() throws {
        let file = try inventory("""
            member: { version: 3.4.23 }
            hosts:
              h1: { address: 10.0.0.1 }
              h2: { address: 10.0.0.2 }
            clusters:
              main: { members: [h1, h2], tls: false }

            """)
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["render", file.path, "--out", file.directory + "/out"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdoutText.contains("2 members need 2 for quorum and tolerate 0 failure(s), as 1 would"), "\(run)")
    }

    @Test func badInputWithJSONOutputIsAJSONErrorOfKindInput() throws {
        let file = try inventory("hosts: { h1: { address: 127.0.0.1 } }\nclusters: { main: { members: [h9] } }\n")
        defer { try? FileManager.default.removeItem(atPath: file.directory) }
        let run = try MusterBinary().run(["verify", file.path, "--output", "json"])
        #expect(run.status == 2, "\(run)")
        let document = try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any]
        #expect((document?["error"] as? [String: Any])?["kind"] as? String == "input", "\(run)")
    }

    @Test func envDefaultsToTheOnlyClusterAndAsksWhenThereAreTwo() throws {
        let one = try inventory(oneCluster)
        let two = try inventory(twoClusters)
        defer {
            try? FileManager.default.removeItem(atPath: one.directory)
            try? FileManager.default.removeItem(atPath: two.directory)
        }
        let single = try MusterBinary().run(["env", one.path])
        #expect(single.status == 0, "\(single)")
        #expect(single.stdoutText.contains("ETCDCTL_ENDPOINTS=http://127.0.0.1:2379"), "\(single)")
        let ambiguous = try MusterBinary().run(["env", two.path])
        #expect(ambiguous.status == 2, "\(ambiguous)")
        #expect(ambiguous.stderrText.contains("--cluster"), "\(ambiguous)")
    }

    /// Before: `env` made a TLS cluster's CA without the lock, racing a first `up` (a CA key and
    /// certificate of two runs). Now it takes the lock to write them and refuses while a run holds it.
    @Test func envMakesTheCAOnlyUnderTheLock() throws {
        let tls = try inventory(oneCluster.replacingOccurrences(of: "tls: false", with: "tls: true"))
        defer { try? FileManager.default.removeItem(atPath: tls.directory) }
        let state = tls.directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        // Another run holds the lock (flock(1) keeps it until its child exits).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["-x", state + "/lock", "/bin/sh", "-c", "echo held; read line"]
        let output = Pipe(), input = Pipe()
        holder.standardOutput = output
        holder.standardInput = input
        try holder.run()
        defer { try? input.fileHandleForWriting.close(); holder.waitUntilExit() }
        #expect(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self) == "held\n")
        let refused = try MusterBinary().run(["env", tls.path, "--state", state])
        #expect(refused.status != 0 && refused.stderrText.contains("holds the lock"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: state + "/pki/main/ca.key"), "a CA was made without the lock")
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
        let made = try MusterBinary().run(["env", tls.path, "--state", state])
        #expect(made.status == 0 && made.stdoutText.contains("ETCDCTL_CACERT="), "\(made)")
        #expect(FileManager.default.fileExists(atPath: state + "/pki/main/ca.key"))
    }
}
