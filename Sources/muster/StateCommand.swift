import ArgumentParser
import Foundation
import MusterAge
import MusterBasics
import MusterDeploy
import MusterObjectStore
import MusterWorkspace
import NIOCore

/// `muster state export|import`: the state dir (CA keys, records, tokens) as one archive
/// encrypted to age recipients, so that losing the controller does not lose the clusters.
struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Export the state dir encrypted to age recipients, or import it back.",
        subcommands: [StateExportCommand.self, StateImportCommand.self])
}

/// The inventory and its state dir, as every command names them.
struct StateLocation: ParsableArguments {
    @Argument(help: "The inventory file (YAML): its state dir is .muster/NAME beside it.")
    var inventory: String

    @Option(help: "Muster's state directory for this inventory (default: .muster/NAME beside it).")
    var state: String?

    var directory: String { state ?? LocalState.defaultDirectory(forInventory: inventory) }
}

struct StateExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the state dir (CA keys, cluster records, discovery tokens; not snapshots) as a tar archive encrypted to age recipients.",
        discussion: "The file is in the age format: `age -d -i IDENTITY_FILE FILE | tar -t` lists it. Taken under the state's lock, so it is never half of a run's change. Contacts no host.")

    @OptionGroup var location: StateLocation

    @Option(help: "The file to write (mode 0600, replaced atomically), or s3://BUCKET/KEY (credentials as the AWS CLI reads them).")
    var out: String

    @OptionGroup var encryption: EncryptionOptions

    @Option(name: .customLong("recipient"), help: "An age recipient (age1..., from age-keygen); repeat for several. Each can open the file alone.")
    var recipients: [String] = []

    func run() async throws {
        try await reportingErrors {
            guard !recipients.isEmpty else { throw MusterError(.usage, "--recipient: name at least one age recipient (age-keygen -y IDENTITY_FILE prints it)") }
            let parsed = try recipients.map { text in
                do { return try AgeRecipient(text) } catch { throw MusterError(.usage, "--recipient: \(error)") }
            }
            let directory = location.directory
            guard FileManager.default.fileExists(atPath: directory) else {
                throw MusterError(.usage, "\(directory) does not exist: no state to export (--state names another)")
            }
            try StateDirectoryCheck.check(directory)
            let state = try LocalState(directory: directory, create: false)
            try state.lock()
            defer { state.unlock() }
            let archive = try StateArchive.archive(stateDirectory: directory)
            let sealed: Data
            do { sealed = try AgeFile.encrypt(archive, to: parsed) } catch { throw MusterError(.host, "\(error)") }
            if let target = try ObjectStoreTarget.parse(out, encryption: encryption.encryption) {
                guard !target.location.key.isEmpty, !target.location.key.hasSuffix("/") else {
                    throw MusterError(.usage, "--out \(out): name the object (s3://BUCKET/KEY), not a prefix")
                }
                do {
                    try await target.client.putObject(target.location, body: sealed, metadata: ["muster-kind": "state-export"],
                                                      encryption: target.encryption)
                } catch let error as ObjectStoreError { throw error.musterError(step: "state export") }
            } else {
                do { try AtomicFile.write(sealed, to: out, mode: 0o600) } catch { throw MusterError(.host, "cannot write \(out): \(error)") }
            }
            print("wrote \(out): the state dir \(directory) (\(archive.count) bytes archived), for \(parsed.count) recipient\(parsed.count == 1 ? "" : "s")")
        }
    }
}

struct StateImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Put a state dir exported by `muster state export` (or tar | age) back.",
        discussion: "Refuses a state dir that holds anything unless --force, which moves it aside (STATE.muster-replaced-TIME, never deleted). The archive may hold only files and directories inside the state dir. Contacts no host.")

    @OptionGroup var location: StateLocation

    @Option(help: "The exported file (age format), or s3://BUCKET/KEY.")
    var from: String

    @Option(help: "An age identity file (AGE-SECRET-KEY-1..., as age-keygen writes it).")
    var identity: String

    @Flag(help: "Import over a state dir that holds something, moving it aside first.")
    var force = false

    func run() async throws {
        try await reportingErrors {
            let identities: [AgeIdentity]
            do {
                identities = try AgeIdentity.parseFile(try String(contentsOfFile: identity, encoding: .utf8), file: identity)
            } catch let error as AgeError {
                throw MusterError(.usage, "--identity: \(error.message)")
            } catch {
                throw MusterError(.usage, "--identity: cannot read \(identity): \(error.localizedDescription)")
            }
            let sealed = try await read(from)
            let archive: Data
            do { archive = try AgeFile.decrypt(sealed, with: identities) } catch { throw MusterError(.input, "\(from): \(error)") }
            let directory = location.directory
            let parent = (directory as NSString).deletingLastPathComponent
            if FileManager.default.fileExists(atPath: parent) { try StateDirectoryCheck.check(parent) }
            let movedAside = try StateArchive.restore(archive, into: directory, replacing: force,
                                                      asideSuffix: ".muster-replaced-" + SnapshotCatalog.stamp(Date()))
            if let movedAside { print("moved the state dir that was there to \(movedAside)") }
            print("imported \(from) into \(directory)")
        }
    }

    /// The export's bytes, from a file or an object; at most what an export can hold: the
    /// archive's limit and age's 16-byte tag per 64 KiB chunk and its short header.
    private func read(_ source: String) async throws -> Data {
        let limit = StateArchive.limit + StateArchive.limit / 4096 + 4096
        let tooLarge = MusterError(.input, "\(source) is over \(limit >> 20) MiB: not a state export")
        guard let target = try ObjectStoreTarget.parse(source) else {
            guard let handle = FileHandle(forReadingAtPath: source) else { throw MusterError(.usage, "--from: cannot read \(source)") }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
            guard data.count <= limit else { throw tooLarge }
            return data
        }
        var data = Data()
        do {
            _ = try await target.client.getObject(target.location) { buffer in
                guard data.count + buffer.readableBytes <= limit else { throw tooLarge }
                data.append(contentsOf: buffer.readableBytesView)
            }
        } catch let error as ObjectStoreError { throw error.musterError(step: "state import") }
        return data
    }
}
