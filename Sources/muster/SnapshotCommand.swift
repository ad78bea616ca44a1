import ArgumentParser
import Foundation
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterWorkspace

/// `muster snapshot save|list`.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Take a cluster's snapshot onto the controller, or list the ones muster took.",
        subcommands: [SnapshotSaveCommand.self, SnapshotListCommand.self, SnapshotPruneCommand.self, SnapshotCheckCommand.self,
                      SnapshotScheduleCommand.self])
}

struct SnapshotSaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Stream a consistent snapshot from a healthy voter (the leader unless --member) to a file on the controller.",
        discussion: "The file is CLUSTER-REVISION-YYYYMMDDTHHMMSSZ.db (mode 0600) in the state dir's snapshots/ unless --out; etcd's sha256 at its end is checked and the revision read from the file. --cluster may be left out when the inventory has one cluster. --out s3://BUCKET[/PREFIX] streams it into a multipart upload completed only once etcd's sha256 checked out (credentials, region and endpoint as the AWS CLI reads them: docs/backups.md). Retention (--keep or --keep-*) then applies to this state's snapshots of the cluster there.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: "Take it from this member (its host's name) instead of the leader.", completion: InventoryCompletion.members)
    var member: String?

    @Option(help: "Directory for the snapshot (default: STATE/snapshots), or s3://BUCKET[/PREFIX].")
    var out: String?

    @Option(help: "Keep this many of muster's snapshots of the cluster there (as --keep-last); older ones are removed. Default: 5 when no --keep-* rule is given.")
    var keep: Int?

    @OptionGroup var retention: RetentionOptions
    @OptionGroup var encryption: EncryptionOptions

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    @Flag(help: "Reach client ports through an SSH tunnel per host.")
    var viaSSH = false

    @Flag(help: "Print the step (the member it would stream from); write nothing.")
    var dryRun = false

    @Flag(help: "Then restore it on the controller and serve it (as `snapshot check`); exit 1 if that fails.")
    var check = false

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1") }
        if dryRun, output == .json { throw ValidationError("--dry-run prints its steps as text: it takes no --output json") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            var save = SnapshotSave(builder: options.builder(), options: remote.runOptions, progress: Progress(quiet: output == .json))
            save.member = member
            save.outDirectory = out
            save.keep = keep ?? 5
            save.retention = retention.given ? retention.policy(keep: keep) : nil
            save.objectStore = try ObjectStoreTarget.parse(out, encryption: encryption.encryption)
            if save.objectStore == nil, encryption.sse != nil { throw ValidationError("--sse applies to --out s3://... only") }
            save.viaSSH = viaSSH
            save.dryRun = dryRun
            guard let outcome = try await save.run() else { return }
            switch output {
            case .table:
                let s = outcome.snapshot
                print("\(outcome.cluster): revision \(s.revision), \(s.size) bytes, sha256 \(s.sha256), \(s.file) (from \(outcome.member))")
                for path in outcome.pruned { print("\(outcome.cluster): pruned \(path)") }
            case .json:
                if !check { print(SnapshotDocument.save(outcome).serialized(), terminator: "") }
            }
            guard check else { return }
            let drill = try await SnapshotCheck(builder: options.builder(), progress: Progress(quiet: output == .json),
                                                snapshot: outcome.snapshot.file).run()
            switch output {
            case .table: SnapshotCheckCommand.printTable(drill)
            case .json:
                guard case .object(var document) = SnapshotDocument.save(outcome) else { break }
                document["check"] = SnapshotCheckCommand.document(drill)
                document["ok"] = .bool(drill.ok)
                print(JSONValue.object(document).serialized(), terminator: "")
            }
            if !drill.ok { throw ExitCode(1) }
        }
    }
}

struct SnapshotListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List muster's snapshots of a cluster (file, revision, size, time). Contacts no host.")

    @OptionGroup var options: InventoryOptions

    @Option(help: "Directory to list (default: STATE/snapshots), or s3://BUCKET[/PREFIX].")
    var out: String?

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            if let target = try ObjectStoreTarget.parse(out) {
                let listing = try await ObjectStoreListing.run(builder: options.builder(), target: target)
                ObjectStoreListingOutput.print(listing, json: output == .json)
                return
            }
            // Off the cooperative pool: it may ask `etcd --version` and wait for it.
            let (builder, out) = (options.builder(), out)
            let listing = try await offPool { try SnapshotListing.run(builder: builder, outDirectory: out) }
            switch output {
            case .table:
                print("FILE\tREVISION\tSIZE\tTAKEN\tCLUSTER ID")
                for entry in listing.entries {
                    print("\(entry.path)\t\(entry.revision)\t\(entry.size)\t\(SnapshotDocument.time(entry.takenAt))\t\(SnapshotDocument.origin(entry, listing))")
                }
                if listing.entries.isEmpty { FileHandle.standardError.write(Data("no snapshots of \(listing.cluster) in \(listing.directory)\n".utf8)) }
            case .json:
                print(SnapshotDocument.list(listing).serialized(), terminator: "")
            }
        }
    }
}

/// The `--output json` documents of `snapshot save`, `snapshot list` and `restore` (JSON.md).
enum SnapshotDocument {
    static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    static func save(_ outcome: SnapshotSave.Outcome) -> JSONValue {
        let s = outcome.snapshot
        return .object([
            "ok": .bool(true),
            "clusters": .array([.object([
                "cluster": .string(outcome.cluster),
                "member": .string(outcome.member),
                "file": .string(s.file),
                "revision": .int(s.revision),
                "size": .int(Int64(s.size)),
                "sha256": .string(s.sha256),
                "taken_at": .string(time(s.takenAt)),
                "cluster_version": outcome.clusterVersion.map(JSONValue.string) ?? .null,
                "recorded": .bool(outcome.recorded),
                "pruned": .array(outcome.pruned.map(JSONValue.string)),
            ])]),
        ])
    }

    /// Which cluster a listed snapshot is of, as the table shows it: a snapshot of an earlier
    /// cluster of the same name (before a `down --wipe-data`, or a restore's new founding) is
    /// said to be so, one the record does not hold is unknown.
    static func origin(_ entry: SnapshotCatalog.Entry, _ listing: SnapshotListing.Result) -> String {
        guard let recorded = entry.recorded else { return "unknown (not recorded: an earlier cluster's, or copied in)" }
        let id = recorded.clusterID ?? "unknown"
        if let incarnation = recorded.incarnation, let current = listing.incarnation, incarnation != current {
            return "\(id) (an earlier incarnation)"
        }
        return id
    }

    static func list(_ listing: SnapshotListing.Result) -> JSONValue {
        .object([
            "clusters": .array([.object([
                "cluster": .string(listing.cluster),
                "directory": .string(listing.directory),
                "snapshots": .array(listing.entries.map { entry in
                    .object([
                        "file": .string(entry.path),
                        "revision": .int(entry.revision),
                        "size": .int(entry.size),
                        "taken_at": .string(time(entry.takenAt)),
                        "sha256": entry.recorded.map { .string($0.sha256) } ?? .null,
                        "cluster_id": entry.recorded?.clusterID.map(JSONValue.string) ?? .null,
                        "incarnation": entry.recorded?.incarnation.map(JSONValue.string) ?? .null,
                        "current_incarnation": .bool(entry.recorded.map { $0.incarnation == listing.incarnation && $0.incarnation != nil } ?? false),
                    ])
                }),
            ])]),
        ])
    }

    static func restore(_ outcome: Restore.Outcome) -> JSONValue {
        .object([
            "ok": .bool(outcome.report.ok),
            "clusters": .array([outcome.report.jsonValue()]),
            "restore": .object([
                "cluster": .string(outcome.cluster),
                "file": .string(outcome.file),
                "revision": .int(outcome.revision),
                "token": .string(outcome.token),
                "cluster_id": .string(EtcdIDs.hex(outcome.clusterID)),
                "bytes_sent": .int(Int64(outcome.bytesSent)),
                "members": .array(outcome.members.map { member in
                    .object([
                        "name": .string(member.name),
                        "host": .string(member.host),
                        "id": .string(EtcdIDs.hex(member.id)),
                        "moved_aside": member.movedAside.map(JSONValue.string) ?? .null,
                    ])
                }),
            ]),
        ])
    }
}
