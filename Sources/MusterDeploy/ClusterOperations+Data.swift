import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan

/// Steps over members' data: who answers healthy now, placing a file or a tool on hosts, and
/// replacing a stopped member's data dir with one restored from a snapshot.
extension ClusterOperations {
    /// The members that answer /health healthy now (one round, 2 s each), without waiting.
    func healthyMembers(_ cluster: ClusterPlan) async throws -> [MemberPlan] {
        try await withEndpoints(cluster) { endpoints in
            var healthy: [MemberPlan] = []
            for member in cluster.members where (try? await endpoints.client(for: member, timeout: 2).health())?.healthy == true {
                healthy.append(member)
            }
            return healthy
        }
    }

    /// The first of `members` that does not answer healthy, if any: a membership change or an
    /// upgrade waits for every voter.
    ///
    /// Asked again for a few seconds before an answer counts: right after a member is lost (the
    /// leader above all) the others answer unhealthy until they have elected a new leader, about
    /// an election timeout later.
    func firstUnhealthy(_ members: [MemberPlan], of cluster: ClusterPlan, patience: TimeInterval = 5) async throws -> MemberPlan? {
        let deadline = Deadline(seconds: patience)
        while true {
            let healthy = Set(try await healthyMembers(ClusterPlan(copying: cluster, members: members)).map(\.name))
            guard let unhealthy = members.first(where: { !healthy.contains($0.name) }) else { return nil }
            guard try await deadline.sleep(.milliseconds(500)) else { return unhealthy }
        }
    }

    /// A binary (a restore tool) on every host in `hosts` that lacks it, through a command's stdin
    /// as `up` ships etcdctl; returns the bytes moved.
    func ship(_ binary: ShippedBinary, to hosts: [String], step: String) async throws -> Int {
        let lacking = hosts.filter { host in facts[host].map { !binary.isCurrent(on: $0) } ?? true }
        for host in hosts where !lacking.contains(host) { progress.host(host, step, "\(binary.fileName) already there") }
        let deliveries = try BinaryDelivery.plan(binary, for: lacking, facts: facts)
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for (host, delivery) in deliveries {
                group.addTask {
                    var script = ApplyScript()
                    script.receive(delivery)
                    try await fleet.check(host, step, script.text, stdin: script.input, timeout: 300)
                    progress.host(host, step, delivery.summary)
                    return delivery.payload.count
                }
            }
            return try await group.reduce(0, +)
        }
    }

    /// A controller file at `remotePath` on every host (SFTP from the file, never whole in
    /// memory; skipped where the same bytes are already there); returns the bytes moved. The
    /// file is hashed once for every host, and not at all when the caller knows its `sha256`
    /// (a snapshot `SnapshotFile.inspect` hashed; each host checks it again before use).
    func place(_ localPath: String, sha256: String? = nil, at remotePath: (String) -> String, on hosts: [String],
               step: String) async throws -> Int {
        let digest: String
        if let sha256 { digest = sha256 } else {
            do { digest = try await offPool { try Digest.sha256Hex(fileAt: localPath) } } catch {
                throw DeployError(host: nil, step: step, "cannot read \(localPath): \(error)")
            }
        }
        // One meter over every host's copy: a multi-GB snapshot to several hosts takes minutes.
        let size = (try? FileManager.default.attributesOfItem(atPath: localPath)[.size] as? Int) ?? 0
        let meter = TransferMeter.forTerminal(label: "\((localPath as NSString).lastPathComponent) to \(hosts.count) host\(hosts.count == 1 ? "" : "s")",
                                              total: Int64(size * hosts.count), machineOutput: progress.isQuiet)
        defer { meter.finish() }
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for host in hosts {
                let target = remotePath(host)
                group.addTask {
                    let result = try await fleet.session(host).upload(from: localPath, to: target, mode: 0o600, privileged: true,
                                                                      sha256: digest, written: { meter.advance(by: $0) })
                    progress.host(host, step, result.skipped ? "\(target) already there" : "\(target) (\(result.bytesSent / 1024) KiB)")
                    return result.bytesSent
                }
            }
            return try await group.reduce(0, +)
        }
    }

    /// How one member's data is restored from a snapshot already on its host.
    struct DataRestore: Sendable {
        /// The snapshot on the member's host (in `RestoreStaging`) and its sha256 (checked there
        /// before use).
        var snapshot: String
        var sha256: String
        /// The restore tool on the host: `etcdctl` for 3.4, `etcdutl` for 3.5.
        var tool: String
        var initialCluster: String
        var token: String
        /// The member's marker once its data is the restored one: `CLUSTER NAME NEWID`, then the
        /// incarnation and state lines `up` writes (`MemberPlan.markerLines`).
        var marker: [String]
        /// Appended to the old data dir's path: `.muster-before-restore-TIMESTAMP-RUN` (RUN: 8 random hex digits of the run).
        var asideSuffix: String
        /// A member's raw database, which has no digest at its end.
        var skipHashCheck = false
    }

    /// Replaces a stopped member's data dir with one restored from `restore.snapshot` (in the
    /// root-only `RestoreStaging` directory, checked there, so it cannot change before the tool
    /// reads it): restored into a new directory only root may enter, made beside the data dir
    /// under a name nobody can guess and then worked in by relative paths (a link put in its
    /// place later is never followed), owned by etcd, then the old dir moved aside (never
    /// deleted, never into a link: `mv -T`) and the new one moved in, and the marker rewritten
    /// with the new ID. Returns where the old data went, nil when there was none.
    func restoreData(_ member: MemberPlan, _ restore: DataRestore) async throws -> String? {
        let p = member.paths
        let data = Shell.quote(p.data), staging = Shell.quote(RestoreStaging.directory(of: member))
        let aside = p.data + restore.asideSuffix
        let parent = (p.data as NSString).deletingLastPathComponent
        let arguments = [
            "snapshot", "restore", restore.snapshot, "--name", member.name, "--initial-cluster", restore.initialCluster,
            "--initial-cluster-token", restore.token, "--initial-advertise-peer-urls", member.peerURL,
            "--data-dir", "restored",
        ] + (restore.skipHashCheck ? ["--skip-hash-check"] : [])
        let script = """
        set -e
        if [ -L \(staging) ] || [ "$(stat -c '%u %a' -- \(staging))" != "0 700" ]; then echo \(Shell.quote("\(RestoreStaging.directory(of: member)) is not root's alone (0700) any more")) >&2; exit 1; fi
        if ! printf '%s  %s\\n' \(Shell.quote(restore.sha256)) \(Shell.quote(restore.snapshot)) | sha256sum -c --status -; then echo \(Shell.quote("\(restore.snapshot) does not have the snapshot's sha256 \(restore.sha256)")) >&2; exit 1; fi
        mkdir -p \(Shell.quote(parent))
        work=$(mktemp -d \(Shell.quote(parent + "/.muster-restoring.XXXXXXXXXX")))
        trap 'cd /; rm -rf -- "$work"' EXIT
        cd -P -- "$work"
        if [ "$(stat -c '%u %a' .)" != "0 700" ] || [ -n "$(ls -A)" ]; then echo "$work was replaced before the restore began" >&2; exit 1; fi
        if ! out=$(ETCDCTL_API=3 \(Shell.join([restore.tool] + arguments)) 2>&1); then printf '%s\\n' "$out" | tail -n 15 >&2; exit 1; fi
        if id -u etcd >/dev/null 2>&1; then chown -hR etcd:etcd restored; fi
        chmod 0700 restored
        if [ -e \(data) ] || [ -L \(data) ]; then
            if [ -e \(Shell.quote(aside)) ] || [ -L \(Shell.quote(aside)) ]; then echo \(Shell.quote("\(aside) exists already")) >&2; exit 1; fi
            mv -T \(data) \(Shell.quote(aside)); echo \(Shell.quote("old data moved aside: \(aside)"))
        fi
        mv -T restored \(data)
        mkdir -p \(Shell.quote(p.configDir))
        marker=$(mktemp \(Shell.quote(p.marker + ".XXXXXXXXXX")))
        printf '%s\\n' \(restore.marker.map(Shell.quote).joined(separator: " ")) > "$marker"
        chmod 0644 "$marker"
        mv -fT "$marker" \(Shell.quote(p.marker))
        echo restored
        """
        let output = try await fleet.check(member.host, "restore", script, timeout: 300)
        progress.host(member.host, "restore", "\(member.cluster): " + output.split(separator: "\n").joined(separator: "; "))
        return output.contains("old data moved aside") ? aside : nil
    }

    private struct HostDirectory: Hashable { var host: String, path: String }

    /// Makes each host's root-only restore staging directory (`RestoreStaging`).
    func prepareRestoreStaging(_ members: [MemberPlan]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (host, directory) in Set(members.map { HostDirectory(host: $0.host, path: RestoreStaging.directory(of: $0)) }).map({ ($0.host, $0.path) }) {
                group.addTask { _ = try await fleet.check(host, "staging", RestoreStaging.prepareScript(directory)) }
            }
            try await group.waitForAll()
        }
    }

    /// Writes each member's conf.yml as `plan` renders it (a restore's founding), and `files`
    /// (its certificates), on every member's host, each file beside its target and renamed over it.
    func writeConfigs(of cluster: ClusterPlan, from plan: Plan, with files: [RenderedFile] = []) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for host in cluster.members.map(\.host).uniqued() {
                let configs = Set(cluster.members.filter { $0.host == host }.map(\.paths.config))
                var script = ApplyScript()
                for file in files where file.host == host { script.write(file) }
                for file in plan.files where file.host == host && configs.contains(file.path) { script.write(file) }
                guard !script.isEmpty else { continue }
                group.addTask {
                    try await fleet.check(host, "config", script.text, stdin: script.input, timeout: 60)
                    progress.host(host, "config", "\(cluster.name): conf.yml of the restored founding written")
                }
            }
            try await group.waitForAll()
        }
    }

    /// Removes a file muster placed (best effort: a leftover copy harms nothing).
    func removeFile(_ path: String, on host: String) async {
        _ = try? await fleet.check(host, "cleanup", "rm -f \(Shell.quote(path))")
    }
}
