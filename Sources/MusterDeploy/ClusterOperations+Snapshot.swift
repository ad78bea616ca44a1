import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterWorkspace

/// One snapshot taken: the part of `snapshot save` that the backup before a change shares.
extension ClusterOperations {
    /// Streams one snapshot of `cluster` from `source` (`snapshotSource`) into `directory`,
    /// checks it, names it, records it and prunes all but the newest `keep` of that directory;
    /// `snapshot save` and the backup before a change (`backup`) both take theirs here.
    func takeSnapshot(_ cluster: ClusterPlan, endpoints: Endpoints, from source: MemberPlan, into directory: String,
                      retention: RetentionPolicy, state: LocalState) async throws -> SnapshotSave.Outcome {
        let takenAt = Date()
        let partial = "\(directory)/.\(cluster.name)-snapshot.\(getpid()).partial"
        unlink(partial)
        progress.host(source.host, "snapshot", "\(cluster.name): streaming from \(source.name)")
        let download: SnapshotDownload
        do {
            let meter = await FileMeter.snapshot(cluster, endpoints: endpoints, source: source, growing: partial, progress: progress)
            defer { meter.stop() }
            download = try await endpoints.client(for: source, timeout: 10).saveSnapshot(to: partial)
        } catch {
            throw DeployError(host: source.host, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        let facts: SnapshotFileFacts
        do {
            // Hashed as it streamed: read again only for its last 32 bytes and its pages.
            let digests = download.digests
            facts = try await offPool { try SnapshotFile.inspect(partial, digests: digests) }
            guard facts.hashMatches else {
                throw SnapshotError("\(partial): the database's sha256 does not match the digest at its end")
            }
        } catch {
            unlink(partial)
            throw DeployError(host: source.host, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        let (path, stamp): (String, Date)
        do {
            (path, stamp) = try SnapshotCatalog.linkUnderFreeName(partial, from: takenAt) {
                directory + "/" + SnapshotCatalog.fileName(cluster: cluster.name, revision: facts.revision, takenAt: $0)
            }
        } catch {
            unlink(partial)
            throw DeployError(host: nil, cluster: cluster.name, step: "snapshot", "\(error)")
        }
        unlink(partial)
        let rate = String(format: "%.2f s, %.1f MiB/s", download.seconds, Double(download.bytes) / 1_048_576 / max(download.seconds, 0.001))
        progress.host(source.host, "snapshot", "\(cluster.name): \(download.bytes) bytes at revision \(facts.revision) (\(rate))")
        // Recorded and pruned in one change of the record: what is pruned is what it records.
        var entry = ClusterRecord.Snapshot(file: path, revision: facts.revision, sha256: facts.fileSHA256,
                                           size: Int(facts.size), takenAt: stamp, clusterID: nil, incarnation: nil)
        var pruned: [String] = []
        let record = try state.records.update(cluster.name) { record in
            entry.clusterID = record?.clusterID
            entry.incarnation = record?.incarnation
            record?.snapshots.append(entry)
            pruned = prune(cluster: cluster.name, directory: directory, retention: retention, record: &record, saved: path)
        }
        if record == nil {
            progress.note("cluster \(cluster.name) has no record yet (muster records a cluster at its first verified `up`): the snapshot is not recorded")
        }
        return SnapshotSave.Outcome(cluster: cluster.name, member: source.name, snapshot: entry, clusterVersion: facts.clusterVersion,
                       recorded: record != nil, pruned: pruned, seconds: download.seconds)
    }

    /// Removes all but the newest `keep` of muster's files for `cluster` (and their records),
    /// never `saved`, the one just taken. A name alone proves nothing (anyone who can write the
    /// directory can plant `CLUSTER-1-29990101T000000Z.db` to push real snapshots out): with a
    /// record, only recorded snapshots are pruned; without one, no name dated in the future counts.
    private func prune(cluster: String, directory: String, retention: RetentionPolicy, record: inout ClusterRecord?, saved: String) -> [String] {
        let soon = Date().addingTimeInterval(300)
        let entries = SnapshotCatalog.list(cluster: cluster, directory: directory, record: record).filter { entry in
            record == nil ? entry.takenAt <= soon : entry.recorded != nil
        }
        let doomed = retention.apply(entries) { $0.takenAt }.removed.filter { $0.path != saved }
        var pruned: [String] = []
        for entry in doomed {
            guard unlink(entry.path) == 0 else {
                progress.note("cannot remove old snapshot \(entry.path): \(String(cString: strerror(errno)))")
                continue
            }
            pruned.append(entry.path)
            progress.note("pruned \(entry.path)")
        }
        record?.snapshots.removeAll { pruned.contains($0.file) }
        return pruned
    }

    /// The member to stream from: `wanted`, or the leader; either must be a healthy voter.
    static func snapshotSource(_ cluster: ClusterPlan, endpoints: Endpoints, wanted: String?) async throws -> MemberPlan {
        var statuses: [(MemberPlan, EndpointStatus)] = []
        var problems: [String] = []
        for member in cluster.members where wanted == nil || member.name == wanted {
            do {
                statuses.append((member, try await endpoints.client(for: member).status()))
            } catch {
                problems.append("\(member.name): \(error)")
            }
        }
        let chosen: (MemberPlan, EndpointStatus)?
        if wanted != nil {
            chosen = statuses.first
        } else {
            let leader = statuses.first { $0.1.leader != 0 }?.1.leader
            chosen = statuses.first { $0.1.header.memberID == leader }
            if chosen == nil { problems.append("no member answering names a leader that answers") }
        }
        guard let (member, status) = chosen else {
            throw DeployError(host: nil, cluster: cluster.name, step: "snapshot",
                              "no healthy voter of cluster '\(cluster.name)' to take a snapshot from: " + problems.joined(separator: "; "))
        }
        guard !status.isLearner else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "snapshot", kind: .refused,
                              "\(member.name) is a learner (etcd 3.4 learners refuse the snapshot stream): name a voter with --member")
        }
        let health = try? await endpoints.client(for: member).health()
        guard health?.healthy == true else {
            throw DeployError(host: member.host, cluster: cluster.name, step: "snapshot",
                              "\(member.name) is not healthy (\(health?.reason ?? "no answer on /health")): a snapshot comes from a healthy voter")
        }
        return member
    }
}

/// A meter fed by a file's size, and the task that reads it.
struct FileMeter {
    var meter: TransferMeter
    var watcher: Task<Void, Never>?

    /// Bytes, rate and time left of a snapshot streaming into `file`, where a person watches: the
    /// total is the source's database size (what etcd streams, less its 32-byte digest), the
    /// bytes done the file's size, read ten times a second.
    static func snapshot(_ cluster: ClusterPlan, endpoints: Endpoints, source: MemberPlan, growing file: String,
                         progress: Progress) async -> FileMeter {
        guard !progress.isQuiet, TransferMeter.forTerminalDraws else {
            return FileMeter(meter: TransferMeter(label: "", total: nil, sink: nil), watcher: nil)
        }
        let size = try? await endpoints.client(for: source, timeout: 5).status().dbSize
        let meter = TransferMeter.forTerminal(label: "snapshot \(cluster.name) from \(source.name)", total: size.map { $0 + 32 },
                                              machineOutput: false)
        let watcher = Task.detached {
            while !Task.isCancelled {
                var facts = stat()
                if stat(file, &facts) == 0 { meter.update(done: Int64(facts.st_size)) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return FileMeter(meter: meter, watcher: watcher)
    }

    func stop() {
        watcher?.cancel()
        if watcher != nil { meter.finish() }
    }
}
