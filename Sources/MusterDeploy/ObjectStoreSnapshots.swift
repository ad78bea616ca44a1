import Foundation
import MusterBasics
import MusterEtcd
import MusterObjectStore
import MusterPlan
import MusterWorkspace

/// `--out s3://BUCKET[/PREFIX]` of `snapshot save|list|prune`: where, as whom, and how encrypted.
public struct ObjectStoreTarget: Sendable {
    public var location: S3Location
    public var encryption: S3Encryption?
    public var client: S3Client

    /// Nil when `out` is not an `s3://` URL. Credentials, region and endpoint as the AWS CLI
    /// reads them (`S3Configuration.fromEnvironment`).
    public static func parse(_ out: String?, encryption: S3Encryption? = nil,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ObjectStoreTarget? {
        guard let out else { return nil }
        do {
            guard let location = try S3Location.parse(out) else { return nil }
            return ObjectStoreTarget(location: location, encryption: encryption,
                                     client: try S3Client(configuration: .fromEnvironment(environment)))
        } catch let error as ObjectStoreError {
            throw error.musterError()
        }
    }
}

extension ObjectStoreError {
    /// As the command line reports it: missing or malformed settings are usage (exit 2); the
    /// endpoint down, S3's refusals and odd answers fail the run (exit 1).
    public func musterError(cluster: String? = nil, step: String? = nil) -> MusterError {
        switch kind {
        case .usage, .credentials: MusterError(.usage, cluster: cluster, step: step, message)
        case .transport, .s3, .answer: MusterError(.host, cluster: cluster, step: step, message)
        case .integrity: MusterError(.refused, cluster: cluster, step: step, message)
        }
    }
}

/// The object metadata muster writes on each snapshot (`x-amz-meta-muster-*`) and reads back.
public struct ObjectSnapshotMetadata: Sendable, Equatable {
    public var cluster: String
    public var revision: Int64?
    /// The members' etcd version when it was taken (`3.5.16`), and the cluster version in the file (`3.5.0`).
    public var etcdVersion: String?
    public var clusterVersion: String?
    /// Of the whole object (`sha256sum`), and of the database alone (etcd's digest at its end).
    public var sha256: String?
    public var databaseSHA256: String?
    public var clusterID: String?
    public var incarnation: String?
    /// The state dir's identity: retention touches only objects its own state wrote.
    public var state: String?
    public var takenAt: String?

    static let prefix = "muster-"

    var headers: [String: String] {
        var fields = ["cluster": cluster]
        fields["revision"] = revision.map(String.init)
        fields["etcd-version"] = etcdVersion
        fields["cluster-version"] = clusterVersion
        fields["sha256"] = sha256
        fields["database-sha256"] = databaseSHA256
        fields["cluster-id"] = clusterID
        fields["incarnation"] = incarnation
        fields["state"] = state
        fields["taken-at"] = takenAt
        return Dictionary(uniqueKeysWithValues: fields.map { (Self.prefix + $0.key, $0.value) })
    }

    /// Nil for an object without muster's cluster field.
    init?(_ metadata: [String: String]) {
        func field(_ name: String) -> String? { metadata[Self.prefix + name] }
        guard let cluster = field("cluster") else { return nil }
        self.init(cluster: cluster, revision: field("revision").flatMap { Int64($0) }, etcdVersion: field("etcd-version"),
                  clusterVersion: field("cluster-version"), sha256: field("sha256"), databaseSHA256: field("database-sha256"),
                  clusterID: field("cluster-id"), incarnation: field("incarnation"), state: field("state"), takenAt: field("taken-at"))
    }

    init(cluster: String, revision: Int64? = nil, etcdVersion: String? = nil, clusterVersion: String? = nil, sha256: String? = nil,
         databaseSHA256: String? = nil, clusterID: String? = nil, incarnation: String? = nil, state: String? = nil, takenAt: String? = nil) {
        self.cluster = cluster
        self.revision = revision
        self.etcdVersion = etcdVersion
        self.clusterVersion = clusterVersion
        self.sha256 = sha256
        self.databaseSHA256 = databaseSHA256
        self.clusterID = clusterID
        self.incarnation = incarnation
        self.state = state
        self.takenAt = takenAt
    }
}

/// One snapshot in a bucket: its key as muster names it, and what its metadata says.
public struct ObjectSnapshot: Sendable {
    public var location: S3Location
    public var revision: Int64
    public var takenAt: Date
    public var size: Int64
    /// Nil for an object of a muster name without muster's metadata (copied in by hand).
    public var metadata: ObjectSnapshotMetadata?
}

/// A snapshot stream into a multipart upload as it arrives, every byte also written to a local
/// file (mode 0600) from which the revision is read once the stream ends (bbolt needs random
/// access). Parts of `partSize`, up to `partsInFlight` of them sent side by side while the stream
/// goes on: memory stays under (partsInFlight + 1) × partSize whatever the snapshot's size. The
/// upload is completed only by `finish()`, after the stream ended with its digest checked;
/// `abort()` otherwise (once every part's request has ended), so no partial object ever exists.
final class SnapshotUpload: SnapshotSink, @unchecked Sendable {
    static let partSize = 8 << 20
    /// As boto3's `upload_file` (`max_concurrency` 10): enough requests to fill a link whose
    /// single request is bound by its round trips and the server's per-request work, 80 MiB of
    /// parts held at most, and one connection each (the transport's way) is ten sockets.
    static let defaultPartsInFlight = 10
    let client: S3Client
    let location: S3Location
    let uploadID: String
    let localPath: String
    let partsInFlight: Int
    private let descriptor: Int32
    private var buffer = Data()
    private var parts: [(number: Int, etag: String)] = []
    private var sent = 0
    /// Parts on their way, oldest first.
    private var inFlight: [Task<(number: Int, etag: String), any Error>] = []
    /// The first error a write met (S3's, the disk's, an interruption), as it was.
    private(set) var failure: (any Error)?
    private(set) var bytes: Int64 = 0

    static func start(_ client: S3Client, at location: S3Location, metadata: [String: String], encryption: S3Encryption?,
                      localPath: String, partsInFlight: Int = defaultPartsInFlight) async throws -> SnapshotUpload {
        let descriptor = open(localPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SnapshotError("cannot create \(localPath): \(String(cString: strerror(errno)))") }
        do {
            let id = try await client.createMultipartUpload(location, metadata: metadata, encryption: encryption)
            return SnapshotUpload(client: client, location: location, uploadID: id, localPath: localPath, descriptor: descriptor,
                                  partsInFlight: max(partsInFlight, 1))
        } catch {
            close(descriptor)
            unlink(localPath)
            throw error
        }
    }

    private init(client: S3Client, location: S3Location, uploadID: String, localPath: String, descriptor: Int32, partsInFlight: Int) {
        (self.client, self.location, self.uploadID, self.localPath, self.descriptor) = (client, location, uploadID, localPath, descriptor)
        self.partsInFlight = partsInFlight
    }

    func write(_ data: Data) async throws {
        do {
            let (descriptor, path) = (self.descriptor, localPath)
            try await offPool {
                if let code = data.withUnsafeBytes({ AtomicFile.writeAll(descriptor, $0) }) {
                    throw SnapshotError("cannot write \(path): \(String(cString: strerror(code)))")
                }
            }
            buffer.append(data)
            bytes += Int64(data.count)
            while buffer.count >= Self.partSize {
                try await upload(Data(buffer.prefix(Self.partSize)))
                // A fresh copy of the rest: `removeFirst` on a large `Data` only moves its start,
                // and the storage behind it grew with the whole snapshot (measured: 300 MB RSS for
                // a 218 MB snapshot).
                buffer = Data(buffer.dropFirst(Self.partSize))
            }
        } catch {
            if failure == nil { failure = error }
            throw error
        }
    }

    /// Sends `part` beside those on their way, once fewer than `partsInFlight` are: the oldest is
    /// waited for first (its failure is the write's).
    private func upload(_ part: Data) async throws {
        try checkpoint("snapshot.upload-part")
        try await collect(keeping: partsInFlight - 1)
        sent += 1
        let (client, location, uploadID, number) = (self.client, self.location, self.uploadID, sent)
        inFlight.append(Task { (number, try await client.uploadPart(location, uploadID: uploadID, number: number, body: part)) })
    }

    /// Waits for the oldest parts until at most `count` are on their way.
    private func collect(keeping count: Int) async throws {
        while inFlight.count > count {
            let oldest = inFlight.removeFirst()
            parts.append(try await oldest.value)
        }
    }

    /// The last part, every part's answer, then the upload completed: the object exists from here on.
    func finish() async throws {
        if !buffer.isEmpty || sent == 0 { try await upload(buffer) }
        buffer = Data()
        try await collect(keeping: 0)
        try checkpoint("snapshot.before-complete")
        try await client.completeMultipartUpload(location, uploadID: uploadID, parts: parts.sorted { $0.number < $1.number })
        close(descriptor)
    }

    /// Aborts the upload (S3 drops its parts) and removes the local copy. The parts still on
    /// their way are cancelled and waited for first: a part S3 takes after the abort would
    /// linger as an upload of its own. Errors here are reported as a note: the run fails anyway
    /// with the error that caused the abort.
    func abort(progress: Progress) async {
        close(descriptor)
        unlink(localPath)
        for part in inFlight { part.cancel() }
        for part in inFlight { _ = try? await part.value }
        inFlight = []
        do { try await client.abortMultipartUpload(location, uploadID: uploadID) } catch {
            progress.note("could not abort the multipart upload \(uploadID) to \(location): \(error) (a bucket lifecycle rule AbortIncompleteMultipartUpload removes it)")
        }
    }
}

extension SnapshotSave {
    /// `snapshot save --out s3://...`: streams the snapshot into a multipart upload under
    /// `PREFIX/.muster-partial/` (completed only once etcd's digest checked out), then copies it
    /// to its final key `PREFIX/CLUSTER-REVISION-STAMP.db` with its metadata (the revision and
    /// the sha256 are known only at the end of the stream, and S3 fixes metadata when an upload
    /// starts; over 5 GiB the copy is a multipart one of ranges, `S3Client.copy`) and deletes the
    /// partial one. The final key never holds anything but a whole,
    /// checked snapshot with its metadata. Then records it and applies retention in the bucket.
    func saveToObjectStore(_ cluster: ClusterPlan, workspace: Workspace, endpoints: Endpoints, from source: MemberPlan,
                           target: ObjectStoreTarget, retention policy: RetentionPolicy) async throws -> Outcome {
        let takenAt = Date()
        let localDirectory = SnapshotCatalog.directory(stateDirectory: workspace.state.directory, out: nil)
        do {
            try FileManager.default.createDirectory(atPath: localDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw MusterError(.input, "cannot create the snapshot directory \(localDirectory): \(error.localizedDescription)")
        }
        let partial = "\(localDirectory)/.\(cluster.name)-upload.\(getpid()).partial"
        unlink(partial)
        let record = try workspace.state.clusterRecord(cluster.name)
        let base = ObjectSnapshotMetadata(cluster: cluster.name, etcdVersion: cluster.memberVersion, clusterID: record?.clusterID,
                                          incarnation: record?.incarnation, state: try workspace.state.identity()?.id)
        let staging = target.location.appending(".muster-partial/\(cluster.name)-\(StateIdentity.newToken()).db")
        let client = target.client
        func failed(_ error: any Error) -> any Error {
            if let error = error as? ObjectStoreError { return error.musterError(cluster: cluster.name, step: "snapshot") }
            if error is ClassifiedError { return error }
            return DeployError(host: source.host, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        progress.host(source.host, "snapshot", "\(cluster.name): streaming from \(source.name) to \(target.location)")
        let upload: SnapshotUpload
        do {
            upload = try await SnapshotUpload.start(client, at: staging, metadata: base.headers, encryption: target.encryption, localPath: partial)
        } catch { throw failed(error) }
        let download: SnapshotDownload
        let facts: SnapshotFileFacts
        do {
            do {
                // The local copy grows as the upload goes: its size is the meter's bytes.
                let meter = await FileMeter.snapshot(cluster, endpoints: endpoints, source: source, growing: partial, progress: progress)
                defer { meter.stop() }
                download = try await endpoints.client(for: source, timeout: 10).saveSnapshot(into: upload)
            } catch {
                throw upload.failure ?? error
            }
            // Hashed as it streamed: read again only for its last 32 bytes and its pages.
            let digests = download.digests
            facts = try await offPool { try SnapshotFile.inspect(partial, digests: digests) }
            guard facts.hashMatches else { throw SnapshotError("\(partial): the database's sha256 does not match the digest at its end") }
            try await upload.finish()
        } catch {
            await upload.abort(progress: progress)
            throw failed(error)
        }
        unlink(partial)
        // The final key: never one that exists (a re-run within the second takes the next one),
        // and never dated before the newest of this cluster's there (retention goes by the names'
        // times: a snapshot named earlier than one it follows would be pruned first). Names dated
        // more than 5 minutes ahead are not believed.
        var stamp = takenAt
        var final: S3Location
        do {
            let soon = takenAt.addingTimeInterval(300)
            let prefix = target.location.directoryPrefix
            let newest = try await client.listObjects(bucket: target.location.bucket, prefix: prefix + cluster.name + "-")
                .compactMap { SnapshotCatalog.parse(String($0.key.dropFirst(prefix.count)), cluster: cluster.name)?.takenAt }
                .filter { $0 <= soon }.max()
            if let newest, newest >= stamp { stamp = newest.addingTimeInterval(1) }
            final = target.location.appending(SnapshotCatalog.fileName(cluster: cluster.name, revision: facts.revision, takenAt: stamp))
            for _ in 0..<10 {
                do { _ = try await client.headObject(final) } catch let error as ObjectStoreError where error.httpStatus == 404 { break }
                stamp = stamp.addingTimeInterval(1)
                final = target.location.appending(SnapshotCatalog.fileName(cluster: cluster.name, revision: facts.revision, takenAt: stamp))
            }
            var metadata = base
            metadata.revision = facts.revision
            metadata.clusterVersion = facts.clusterVersion
            metadata.sha256 = facts.fileSHA256
            metadata.databaseSHA256 = facts.databaseSHA256
            metadata.takenAt = SnapshotCatalog.stamp(stamp)
            try checkpoint("snapshot.before-copy")
            try await client.copy(from: staging, size: Int64(facts.size), to: final, metadata: metadata.headers, encryption: target.encryption)
            try await client.deleteObject(staging)
        } catch {
            throw failed(error)
        }
        let rate = String(format: "%.2f s, %.1f MiB/s", download.seconds, Double(download.bytes) / 1_048_576 / max(download.seconds, 0.001))
        progress.host(source.host, "snapshot", "\(cluster.name): \(download.bytes) bytes at revision \(facts.revision) to \(final) (\(rate))")
        let entry = ClusterRecord.Snapshot(file: final.description, revision: facts.revision, sha256: facts.fileSHA256,
                                           size: Int(facts.size), takenAt: stamp, clusterID: record?.clusterID, incarnation: record?.incarnation)
        let pruned: [String]
        do {
            pruned = try await ObjectStorePruning.prune(cluster: cluster.name, target: target, state: base.state, policy: policy,
                                                        sparing: final, dryRun: false, progress: progress).removed.map { $0.location.description }
        } catch { throw failed(error) }
        // Recorded and pruned in one change of the record.
        let recorded = try workspace.state.records.update(cluster.name) { record in
            record?.snapshots.append(entry)
            record?.snapshots.removeAll { pruned.contains($0.file) }
        }
        if recorded == nil {
            progress.note("cluster \(cluster.name) has no record yet (muster records a cluster at its first verified `up`): the snapshot is not recorded")
        }
        return Outcome(cluster: cluster.name, member: source.name, snapshot: entry, clusterVersion: facts.clusterVersion,
                       recorded: recorded != nil, pruned: pruned, seconds: download.seconds)
    }
}

/// muster's snapshots in a bucket, and retention applied to them.
public enum ObjectStorePruning {
    /// The objects directly under the target's prefix named as muster names `cluster`'s
    /// snapshots, oldest first, with their metadata (one HEAD each).
    public static func list(cluster: String, target: ObjectStoreTarget) async throws -> [ObjectSnapshot] {
        let prefix = target.location.directoryPrefix
        var found: [ObjectSnapshot] = []
        for object in try await target.client.listObjects(bucket: target.location.bucket, prefix: prefix) {
            let name = String(object.key.dropFirst(prefix.count))
            guard !name.contains("/"), let (revision, takenAt) = SnapshotCatalog.parse(name, cluster: cluster) else { continue }
            let location = S3Location(bucket: target.location.bucket, key: object.key)
            let head = try await target.client.headObject(location)
            found.append(ObjectSnapshot(location: location, revision: revision, takenAt: takenAt, size: object.size,
                                        metadata: ObjectSnapshotMetadata(head.metadata)))
        }
        return found.sorted { ($0.takenAt, $0.revision, $0.location.key) < ($1.takenAt, $1.revision, $1.location.key) }
    }

    public struct Result: Sendable {
        /// Kept, newest first, with the rules that keep each.
        public var kept: [(snapshot: ObjectSnapshot, rules: [RetentionPolicy.Rule])]
        public var removed: [ObjectSnapshot]
        /// muster-named objects left alone: not this state's snapshots of this cluster.
        public var foreign: [ObjectSnapshot]
    }

    /// Applies `policy` to this state's snapshots of `cluster` in the bucket: only objects whose
    /// metadata names this cluster and this state dir count (a name alone proves nothing: another
    /// controller's cluster of the same name, or a file copied in, is never deleted). `sparing`
    /// (the one just saved) always stays.
    public static func prune(cluster: String, target: ObjectStoreTarget, state: String?, policy: RetentionPolicy,
                             sparing: S3Location?, dryRun: Bool, progress: Progress) async throws -> Result {
        let all = try await list(cluster: cluster, target: target)
        let ours = all.filter { $0.metadata?.cluster == cluster && state != nil && $0.metadata?.state == state }
        let foreign = all.filter { snapshot in !ours.contains { $0.location == snapshot.location } }
        let decision = policy.apply(ours) { $0.takenAt }
        var removed: [ObjectSnapshot] = []
        var kept = decision.kept.map { (snapshot: $0.item, rules: $0.rules) }
        for snapshot in decision.removed {
            if snapshot.location == sparing { kept.append((snapshot, [.last])); continue }
            if !dryRun {
                try await target.client.deleteObject(snapshot.location)
                progress.note("pruned \(snapshot.location)")
            }
            removed.append(snapshot)
        }
        return Result(kept: kept, removed: removed, foreign: foreign)
    }
}

extension Restore {
    /// The snapshot to restore as a local path (`ObjectStoreDownload.localPath`).
    func localSnapshot(stateDirectory: String, cluster: String) async throws -> String {
        try await ObjectStoreDownload.localPath(of: snapshot, stateDirectory: stateDirectory, cluster: cluster, progress: progress)
    }
}

enum ObjectStoreDownload {
    /// `snapshot` as a local path: the file named, or an `s3://BUCKET/KEY` object downloaded
    /// into `STATE/snapshots/downloaded/` (mode 0600) and its sha256 checked against the
    /// object's metadata before anything else happens.
    static func localPath(of snapshot: String, stateDirectory: String, cluster: String, progress: Progress) async throws -> String {
        guard let target = try ObjectStoreTarget.parse(snapshot) else { return URL(fileURLWithPath: snapshot).standardizedFileURL.path }
        let location = target.location
        guard !location.key.isEmpty, !location.key.hasSuffix("/") else {
            throw MusterError(.usage, "\(snapshot): name the snapshot's key (s3://BUCKET/KEY)")
        }
        let directory = SnapshotCatalog.directory(stateDirectory: stateDirectory, out: nil) + "/downloaded"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return try await fetch(location, client: target.client, into: directory, progress: progress)
        } catch let error as ObjectStoreError {
            throw error.musterError(cluster: cluster, step: "snapshot")
        }
    }

    /// Downloads `location` to `directory/NAME` (a new file, mode 0600), hashing as it goes;
    /// refuses (and removes the file) when the object has no muster sha256 or another one.
    static func fetch(_ location: S3Location, client: S3Client, into directory: String, progress: Progress) async throws -> String {
        let name = location.key.split(separator: "/").last.map(String.init) ?? "snapshot.db"
        let path = directory + "/" + name
        let partial = path + ".\(getpid()).partial"
        unlink(partial)
        let descriptor = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SnapshotError("cannot create \(partial): \(String(cString: strerror(errno)))") }
        progress.note("downloading \(location) to \(path)")
        let hasher = SHA256Hasher()
        let head: S3ObjectHead
        do {
            head = try await client.getObject(location) { chunk in
                let data = Data(chunk.readableBytesView)
                hasher.update(data)
                try await offPool {
                    if let code = data.withUnsafeBytes({ AtomicFile.writeAll(descriptor, $0) }) {
                        throw SnapshotError("cannot write \(partial): \(String(cString: strerror(code)))")
                    }
                }
            }
            try await offPool { guard fsync(descriptor) == 0 else { throw SnapshotError("cannot fsync \(partial)") } }
            close(descriptor)
        } catch {
            close(descriptor)
            unlink(partial)
            throw error
        }
        let digest = Digest.hex(hasher.finalize())
        guard let expected = head.metadata[ObjectSnapshotMetadata.prefix + "sha256"] else {
            unlink(partial)
            throw ObjectStoreError(.integrity, "\(location) carries no muster sha256 (x-amz-meta-muster-sha256): not a snapshot muster saved, or its metadata was lost; download it yourself and restore the file; nothing was changed on any host")
        }
        guard expected == digest else {
            unlink(partial)
            throw ObjectStoreError(.integrity, "\(location) is damaged: its sha256 is \(digest), its metadata says \(expected); nothing was changed on any host")
        }
        guard rename(partial, path) == 0 else {
            unlink(partial)
            throw SnapshotError("cannot name \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }
}
