import Foundation
import Testing
import MusterTestSupport

/// `scripts/install.sh --prefix DIR --binary PATH` installs a muster that works from anywhere:
/// the installed binary finds its templates, its bash completion loads, its man page reads.
@Suite struct InstallTests {
    private func shell(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// One plain-http member: enough to render.
    private func writeInventory(in directory: String) throws {
        try """
            member: { version: 3.4.23 }
            hosts: { h1: { address: 10.0.0.1 } }
            clusters: { main: { members: [h1], tls: false } }

            """.write(toFile: directory + "/inventory.yml", atomically: true, encoding: .utf8)
    }

    /// A `templates/` an attacker left in the working directory (or a parent of it).
    private func plantTemplates(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory + "/templates", withIntermediateDirectories: true)
        for name in ["conf.yml", "dnsmasq.conf", "etcd.service", "start-member.sh"] {
            try "planted\n".write(toFile: "\(directory)/templates/\(name).mustache", atomically: true, encoding: .utf8)
        }
    }

    /// A muster binary with no templates beside it refuses, naming where it looked, rather than
    /// rendering a `templates/` of the working directory.
    @Test func aBinaryWithoutTemplatesBesideItNeverFallsBackToTheWorkingDirectory() throws {
        let built = try MusterBinary()
        let directory = try TemporaryDirectory.create(prefix: "muster-lone-binary")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: built.path, toPath: directory + "/bin/muster")
        try plantTemplates(in: directory)
        try writeInventory(in: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_TEMPLATES"] = nil
        let render = try MusterBinary(path: directory + "/bin/muster").run(["render", "inventory.yml", "--out", "out"],
                                                                            environment: environment, in: directory)
        #expect(render.status == 2, "\(render)")
        #expect(render.stderrText.contains("no templates beside the muster binary \(directory)/bin/muster"), "\(render)")
        #expect(render.stderrText.contains("--templates DIR"), "\(render)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/out"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/.muster"), "a refused run left a state dir")
    }

    @Test func anInstalledMusterRendersFromAnotherDirectoryAndItsCompletionLoads() throws {
        let built = try MusterBinary()
        let prefix = try TemporaryDirectory.create(prefix: "muster-install")
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let install = try shell([MusterBinary.packageRoot.path + "/scripts/install.sh", "--prefix", prefix, "--binary", built.path])
        #expect(install.status == 0, "\(install.stderr)")

        let workDirectory = try TemporaryDirectory.create(prefix: "muster-installed-run")
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        try writeInventory(in: workDirectory)
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_TEMPLATES"] = nil
        // Run by name from PATH, as operators do, in a directory that holds planted templates:
        // the installed ones are used, never the working directory's.
        try plantTemplates(in: workDirectory)
        environment["PATH"] = prefix + "/bin:" + (environment["PATH"] ?? "/usr/bin:/bin")
        let installed = MusterBinary(path: prefix + "/bin/muster")
        let render = try MusterBinary(path: "/usr/bin/env").run(["muster", "render", "inventory.yml", "--out", "out"],
                                                                environment: environment, in: workDirectory)
        #expect(render.status == 0, "\(render)")
        #expect(render.stdoutText.contains("templates from \(prefix)/share/muster/templates\n"), "\(render)")
        let conf = try String(contentsOfFile: workDirectory + "/out/h1/etc/etcd/main/conf.yml", encoding: .utf8)
        #expect(!conf.contains("planted"), "the working directory's templates were rendered")

        let version = try installed.run(["--version"])
        #expect(version.stdoutText == "muster 0.2.0\ntested with etcd 3.4.23, 3.5.16\n", "\(version)")

        let completion = try shell(["/bin/bash", "-c", "source \"$1\" && complete -p muster", "bash",
                                               prefix + "/share/bash-completion/completions/muster"])
        #expect(completion.status == 0 && completion.stdout.contains("muster"), "\(completion.stderr)")
        for file in ["share/zsh/site-functions/_muster", "share/fish/vendor_completions.d/muster.fish", "share/man/man1/muster.1"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(prefix)/\(file)")[.size] as? Int) ?? 0
            #expect(size > 100, "\(file) is missing or empty")
        }
        let man = try String(contentsOfFile: prefix + "/share/man/man1/muster.1", encoding: .utf8)
        #expect(man.contains(".SH MUSTER UP") && man.contains("--dry-run"), "the man page lacks `up`")
        // The sections come from the binary's own command tree, nested commands included.
        for section in ["MUSTER", "MUSTER REPLACE", "MUSTER DEFRAG", "MUSTER IMPORT ANSIBLE", "MUSTER SNAPSHOT SAVE"] {
            #expect(man.contains(".SH \(section)\n"), "the man page has no section \(section)")
        }
    }
}
