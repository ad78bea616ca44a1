import ArgumentParser
import Foundation
import MusterBasics
import MusterDeploy
import MusterEtcd

/// `muster snapshot prune`.
struct SnapshotPruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Apply retention (--keep-*) to muster's snapshots of a cluster in a directory or a bucket. Contacts no host.",
        discussion: "As restic's forget: a snapshot kept by any rule stays. Only this state's snapshots of the cluster count: recorded files in a directory, objects whose metadata names this cluster and this state dir in a bucket. Prints what goes and which rule keeps the rest; --dry-run removes nothing.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var retention: RetentionOptions

    @Option(help: "Directory (default: STATE/snapshots) or s3://BUCKET[/PREFIX].")
    var out: String?

    @Flag(help: "Say what would go; remove nothing.")
    var dryRun = false

    @Option(help: "Result format: table or json.")
    var output: OutputFormat = .table

    func validate() throws {
        guard retention.given else { throw ValidationError("give at least one --keep-* rule") }
    }

    func run() async throws {
        try await reportingErrors(json: output == .json) {
            var prune = SnapshotPrune(builder: options.builder(), policy: retention.policy(keep: nil)!, progress: Progress(quiet: output == .json))
            prune.outDirectory = out
            prune.objectStore = try ObjectStoreTarget.parse(out)
            prune.dryRun = dryRun
            let outcome = try await prune.run()
            switch output {
            case .table:
                let verb = outcome.dryRun ? "would remove" : "removed"
                for name in outcome.removed { print("\(outcome.cluster): \(verb) \(name)") }
                for (name, rules) in outcome.kept { print("\(outcome.cluster): keep \(name) (\(rules.map(\.rawValue).joined(separator: ", ")))") }
                for name in outcome.untouched { print("\(outcome.cluster): left alone \(name) (not this state's snapshot of \(outcome.cluster))") }
            case .json:
                let kept: [JSONValue] = outcome.kept.map { entry in
                    let rules: [JSONValue] = entry.rules.map { JSONValue.string($0.rawValue) }
                    return JSONValue.object(["name": .string(entry.name), "rules": .array(rules)])
                }
                print(JSONValue.object([
                    "ok": .bool(true),
                    "cluster": .string(outcome.cluster),
                    "location": .string(outcome.location),
                    "dry_run": .bool(outcome.dryRun),
                    "removed": .array(outcome.removed.map(JSONValue.string)),
                    "kept": .array(kept),
                    "untouched": .array(outcome.untouched.map(JSONValue.string)),
                ]).serialized(), terminator: "")
            }
        }
    }
}

/// `snapshot list --out s3://...`'s table and JSON.
enum ObjectStoreListingOutput {
    static func print(_ listing: ObjectStoreListing.Result, json: Bool) {
        if json {
            Swift.print(document(listing).serialized(), terminator: "")
            return
        }
        Swift.print("OBJECT\tREVISION\tSIZE\tTAKEN\tCLUSTER ID\tETCD\tSHA256")
        for snapshot in listing.snapshots {
            let metadata = snapshot.metadata
            var origin = metadata?.clusterID ?? "unknown"
            if metadata == nil { origin = "unknown (no muster metadata: copied in)" }
            else if metadata?.state != listing.state { origin += " (another state dir's)" }
            else if let incarnation = metadata?.incarnation, let current = listing.incarnation, incarnation != current { origin += " (an earlier incarnation)" }
            Swift.print("\(snapshot.location)\t\(snapshot.revision)\t\(snapshot.size)\t\(SnapshotDocument.time(snapshot.takenAt))\t\(origin)\t\(metadata?.etcdVersion ?? "-")\t\(metadata?.sha256 ?? "-")")
        }
        if listing.snapshots.isEmpty { FileHandle.standardError.write(Data("no snapshots of \(listing.cluster) in \(listing.location)\n".utf8)) }
    }

    static func document(_ listing: ObjectStoreListing.Result) -> JSONValue {
        .object([
            "clusters": .array([.object([
                "cluster": .string(listing.cluster),
                "location": .string(listing.location),
                "snapshots": .array(listing.snapshots.map { snapshot in
                    let m = snapshot.metadata
                    return .object([
                        "object": .string(snapshot.location.description),
                        "revision": .int(snapshot.revision),
                        "size": .int(snapshot.size),
                        "taken_at": .string(SnapshotDocument.time(snapshot.takenAt)),
                        "sha256": m?.sha256.map(JSONValue.string) ?? .null,
                        "etcd_version": m?.etcdVersion.map(JSONValue.string) ?? .null,
                        "cluster_version": m?.clusterVersion.map(JSONValue.string) ?? .null,
                        "cluster_id": m?.clusterID.map(JSONValue.string) ?? .null,
                        "incarnation": m?.incarnation.map(JSONValue.string) ?? .null,
                        "this_state": .bool(m?.state != nil && m?.state == listing.state),
                        "current_incarnation": .bool(m?.incarnation != nil && m?.incarnation == listing.incarnation),
                    ])
                }),
            ])]),
        ])
    }
}
