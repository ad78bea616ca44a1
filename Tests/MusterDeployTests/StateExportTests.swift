import Foundation
import Testing
import MusterBasics
import MusterWorkspace
import MusterSandbox

/// The controller lost: a state exported with `muster state export` (opened by the `age` command
/// alone) and imported on a clean controller manages the running cluster again, and an archive
/// the `age` and `tar` commands made imports the same way.
@Suite struct StateExportTests {
    private func shell(_ script: String) throws -> ProcessResult {
        try LocalProcess.run(["/bin/bash", "-c", "set -o pipefail\n" + script], timeout: 60)
    }

    /// `muster state ...` as an operator runs it (it renders nothing, so takes no --templates).
    private func stateCommand(_ arguments: [String]) throws -> ProcessResult {
        try LocalProcess.run([MusterCLI.binary, "state"] + arguments, timeout: 60)
    }

    @Test func anExportedStateManagesTheClusterAfterTheControllerIsLost() async throws {
        for tool in ["/usr/bin/age", "/usr/bin/age-keygen"] {
            #expect(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: scripts/setup.sh installs Debian's age")
            guard FileManager.default.isExecutableFile(atPath: tool) else { return }
        }
        try await onSandbox {
            let builder = try await DeploySandbox.formedTLSCluster(binary: DeploySandbox.etcd35).builder
            let inventory = builder.inventoryPath
            let state = try builder.build().state.directory
            let work = (inventory as NSString).deletingLastPathComponent
            #expect(try MusterCLI.run(["snapshot", "save", inventory]).status == 0)
            let key = work + "/operator.key"
            #expect(try shell("age-keygen -o \(key)").status == 0)
            let recipient = try shell("age-keygen -y \(key)").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            let other = work + "/other.key"
            #expect(try shell("age-keygen -o \(other)").status == 0)

            let export = work + "/state.age"
            let exported = try stateCommand(["export", inventory, "--out", export, "--recipient", recipient])
            #expect(exported.status == 0, "\(exported.stderrText)")
            // The age command alone opens it: CA keys, records and the identity; no snapshot, no lock.
            let listing = try shell("age -d -i \(key) \(export) | tar -tf -")
            #expect(listing.status == 0, "\(listing.stderrText)")
            for name in ["./identity", "./pki/main/ca.key", "./pki/main/peer-ca.key", "./clusters/main.json"] {
                #expect(listing.stdoutText.contains(name + "\n"), "\(name) missing from \(listing.stdoutText)")
            }
            #expect(!listing.stdoutText.contains("snapshots") && !listing.stdoutText.contains("./lock"), "\(listing.stdoutText)")
            let mode = try FileManager.default.attributesOfItem(atPath: export)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let caKey = try Data(contentsOf: URL(fileURLWithPath: state + "/pki/main/ca.key"))

            // The controller is lost.
            try FileManager.default.removeItem(atPath: state)
            let blind = try MusterCLI.run(["verify", inventory])
            #expect(blind.status != 0, "without its CA muster cannot speak to the cluster")

            let wrongKey = try stateCommand(["import", inventory, "--from", export, "--identity", other])
            let left = (try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []
            #expect(wrongKey.status == 2 && left.allSatisfy { $0 == "lock" }, "\(wrongKey.stderrText) \(left)")
            let imported = try stateCommand(["import", inventory, "--from", export, "--identity", key])
            #expect(imported.status == 0, "\(imported.stderrText)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: state + "/pki/main/ca.key")) == caKey)
            let keyMode = try FileManager.default.attributesOfItem(atPath: state + "/pki/main/ca.key")[.posixPermissions] as? Int
            #expect(keyMode == 0o600)
            let verified = try MusterCLI.run(["verify", inventory])
            #expect(verified.status == 0, "\(verified.stdoutText)\(verified.stderrText)")
            let again = try MusterCLI.run(["up", inventory])
            #expect(again.status == 0 && !(again.stdoutText + again.stderrText).contains("step "), "a re-run changes nothing: \(again.stdoutText)\(again.stderrText)")

            // An import never overwrites: --force moves what is there aside.
            let refused = try stateCommand(["import", inventory, "--from", export, "--identity", key])
            #expect(refused.status == 1 && refused.stderrText.contains("--force"), "\(refused.stderrText)")
            let forced = try stateCommand(["import", inventory, "--from", export, "--identity", key, "--force"])
            #expect(forced.status == 0, "\(forced.stderrText)")
            let aside = try FileManager.default.contentsOfDirectory(atPath: (state as NSString).deletingLastPathComponent)
                .filter { $0.contains(".muster-replaced-") }
            #expect(aside.count == 1, "\(aside)")

            // What tar and age made by hand imports too, under another --state.
            let byHand = work + "/by-hand.age"
            #expect(try shell("tar -C \(state) --exclude=./lock -cf - . | age -r \(recipient) > \(byHand)").status == 0)
            let elsewhere = work + "/elsewhere/state"
            let handImport = try stateCommand(["import", inventory, "--state", elsewhere, "--from", byHand, "--identity", key])
            #expect(handImport.status == 0, "\(handImport.stderrText)")
            #expect(try MusterCLI.run(["verify", inventory, "--state", elsewhere]).status == 0)

            // An archive with a link in it is refused before anything is extracted.
            let hostile = work + "/hostile"
            let linked = work + "/linked.age"
            #expect(try shell("mkdir -p \(hostile) && ln -s /etc \(hostile)/pki && tar -C \(hostile) -cf - . | age -r \(recipient) > \(linked)").status == 0)
            let target = work + "/target/state"
            let refusedLink = try stateCommand(["import", inventory, "--state", target, "--from", linked, "--identity", key])
            #expect(refusedLink.status == 2 && !FileManager.default.fileExists(atPath: target), "\(refusedLink.stderrText)")

            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
