import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterEtcd
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// `muster snapshot save|list` and `muster restore` on the deploy sandbox, against real etcd.
@Suite struct SnapshotTests {
    private static let hosts = ["host1", "host2", "host3"]

    private func tlsInventory(binary: String = "/usr/bin/etcd") throws -> PlanBuilder {
        try DeploySandbox.inventory(.static, binary: binary) {
            $0.replacingOccurrences(of: "  main:\n    members: [host1, host2, host3]\n    tls: false", with: "  main:\n    members: [host1, host2, host3]\n    tls: true")
        }
    }

    /// Size of the large values: near etcd's request limit (1.5 MiB, `--max-request-bytes`'s
    /// default, which counts the key and the request's framing too).
    private static let largeValue = 1_500_000

    /// Key i's value: every 1000th near the request limit, the rest small.
    private static func value(_ i: Int) -> String {
        if i % 1000 == 0 {
            let unit = "\(i)-abcdefghijklmnopqrstuvwxyz-"
            return String(String(repeating: unit, count: largeValue / unit.utf8.count + 1).prefix(largeValue))
        }
        return "v\(i)-" + String(repeating: "x", count: i % 50)
    }

    private static func key(_ i: Int) -> String { String(format: "/snap/key-%04d", i) }

    /// Runs `body` for 0..<count, 16 at a time; returns the largest Int64 any returned.
    private static func each(_ count: Int, _ body: @escaping @Sendable (Int) async throws -> Int64) async throws -> Int64 {
        try await withThrowingTaskGroup(of: Int64.self) { group in
            var next = 0, best: Int64 = 0
            while next < min(16, count) { let i = next; group.addTask { try await body(i) }; next += 1 }
            while let result = try await group.next() {
                best = max(best, result)
                if next < count { let i = next; group.addTask { try await body(i) }; next += 1 }
            }
            return best
        }
    }

    /// Writes keys 0..<count: the large values one per request, the others 100 per transaction
    /// (etcd takes at most 128 operations in one). Returns the last revision.
    private func writeKeys(_ count: Int, client: EtcdClient) async throws -> Int64 {
        let large = (0..<count).filter { Self.value($0).utf8.count > 100_000 }
        let small = (0..<count).filter { !large.contains($0) }
        let batches = stride(from: 0, to: small.count, by: 100).map { Array(small[$0..<min($0 + 100, small.count)]) }
        let last = try await Self.each(batches.count) { b in
            try await client.putAll(batches[b].map { (Self.key($0), Self.value($0)) }).header.revision
        }
        return max(last, try await Self.each(large.count) { i in try await client.put(Self.key(large[i]), Self.value(large[i])).header.revision })
    }

    /// Every key reads back with its value, and no other key is there.
    private func checkKeys(_ count: Int, client: EtcdClient) async throws {
        // Pages of 200 keys: at most one large value each, well within what the client reads.
        var values: [String: String] = [:], from = "/snap/key-"
        for _ in 0...(count / 200 + 1) {
            let page = try await client.getPrefix("/snap/key-", from: from, limit: 200)
            for kv in page.kvs { values[kv.key] = kv.value }
            guard page.kvs.count == 200, let last = page.kvs.last else { break }
            from = last.key + "\u{0}"
        }
        #expect(values.count == count, "keys after the restore")
        let wrong = (0..<count).filter { values[Self.key($0)] != Self.value($0) }
        #expect(wrong.isEmpty, "\(wrong.count) keys lost or changed, the first \(wrong.prefix(5).map(Self.key))")
    }

    /// What every host's data dirs hold (every path; the data dirs' own times, which change when
    /// an entry in them is made, moved or removed), which etcd runs, its marker. Not the times or
    /// sizes of the files inside: a running member writes its WAL by itself.
    private func hostListings() throws -> [String] {
        try Self.hosts.map { try DeploySandbox.exec($0, "find /var/lib/etcd -printf '%p\\n' 2>/dev/null | sort; stat -c '%n %.9Y' /var/lib/etcd /var/lib/etcd/main /var/lib/etcd/main/member 2>/dev/null; cat /run/etcd/main.pid 2>/dev/null; cat /etc/etcd/main/member.id 2>/dev/null") }
    }

    /// A JSON document, walked with subscripts (`?["a"]?[0]`).
    private static func json(_ data: Data) -> JSONNode? { (try? JSONSerialization.jsonObject(with: data)).map(JSONNode.init) }

    private func pids() throws -> [String] { try Self.hosts.map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } }

    /// The built CLI with MUSTER_SANDBOX_ONLY=1 (and a failpoint).
    private func cli(_ arguments: [String], failpoint: String? = nil) throws -> ProcessResult {
        let binary = repositoryRoot + "/.build/debug/muster"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SandboxError("\(binary) is missing: `swift build` first (this test runs the CLI)")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_SANDBOX_ONLY"] = "1"
        if let failpoint { environment["MUSTER_FAILPOINT"] = failpoint } else { environment.removeValue(forKey: "MUSTER_FAILPOINT") }
        return try LocalProcess.run([binary] + arguments + ["--templates", repositoryRoot + "/templates"], environment: environment, timeout: 300)
    }

    @Test func saveRestoreAndRefusalsOnATLSClusterOfEtcd34() async throws {
        try await onSandbox {
            let builder = try tlsInventory()
            let first = try await DeploySandbox.up(builder)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")
            let state = try builder.build().state.directory
            let pki = "\(state)/pki/main"
            let tls = EtcdTLS(caPath: "\(pki)/ca.crt", certPath: "\(pki)/client.crt", keyPath: "\(pki)/client.key")
            let client = EtcdClient(baseURL: "https://\(try DeploySandbox.host("host1").address):2379", timeout: 20, tls: tls)
            let keyCount = 10_000
            let lastRevision = try await writeKeys(keyCount, client: client)

            // save: name, mode, digests, revision (from the file, as etcdctl reads it too)
            let saved = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress()).run())
            let file = saved.snapshot.file
            let name = (file as NSString).lastPathComponent
            #expect(name.wholeMatch(of: /main-\d+-\d{8}T\d{6}Z\.db/) != nil, "\(name)")
            #expect((file as NSString).deletingLastPathComponent == URL(fileURLWithPath: state + "/snapshots").standardizedFileURL.path)
            #expect(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int == 0o600)
            #expect(saved.snapshot.sha256 == (try Digest.sha256Hex(fileAt: file)))
            let inspected = try SnapshotFile.inspect(file)
            #expect(inspected.hashMatches && inspected.embeddedSHA256 != nil)
            #expect(saved.snapshot.revision == lastRevision, "the snapshot was taken after the last write")
            #expect(saved.snapshot.size > 10 * Self.largeValue)
            #expect(inspected.clusterVersion == "3.4.0")
            let status = try LocalProcess.run(["etcdctl", "snapshot", "status", file, "-w", "json"], environment: ["ETCDCTL_API": "3"], timeout: 60)
            struct Status: Decodable { var revision: Int64 }
            #expect(try JSONDecoder().decode(Status.self, from: status.stdout).revision == saved.snapshot.revision, "\(status.stderrText)")
            #expect(try builder.build().state.clusterRecord("main")?.snapshots.map(\.file) == [file])

            // throughput: muster's stream and `etcdctl snapshot save` from the controller, same cluster, same run
            let clock = ContinuousClock()
            let started = clock.now
            let again = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true)).run())
            let musterSeconds = (clock.now - started).seconds
            let scratch = try TemporaryDirectory(prefix: "muster-snapshot")
            let etcdctlFile = scratch.path + "/etcdctl.db"
            let etcdctlStarted = clock.now
            let byEtcdctl = try LocalProcess.run(["etcdctl", "--endpoints=\(client.baseURL)", "--cacert=\(tls.caPath)", "--cert=\(tls.certPath)",
                                                  "--key=\(tls.keyPath)", "snapshot", "save", etcdctlFile], environment: ["ETCDCTL_API": "3"], timeout: 120)
            let etcdctlSeconds = (clock.now - etcdctlStarted).seconds
            #expect(byEtcdctl.succeeded, "\(byEtcdctl.stderrText)")
            // the JSON gateway alone, read by curl (what any HTTP client of the gateway can reach)
            let curlStarted = clock.now
            let byCurl = try LocalProcess.run(["curl", "-sS", "--cacert", tls.caPath, "--cert", tls.certPath, "--key", tls.keyPath,
                                               "-X", "POST", "-d", "{}", "-o", "/dev/null", client.baseURL + "/v3/maintenance/snapshot"], timeout: 120)
            let curlSeconds = (clock.now - curlStarted).seconds
            #expect(byCurl.succeeded, "\(byCurl.stderrText)")
            print(String(format: "snapshot over the JSON gateway by curl: %.2f s", curlSeconds))
            let mib = Double(again.snapshot.size) / 1_048_576
            print(String(format: "snapshot throughput (%.1f MiB, TLS): muster %.2f s (%.1f MiB/s, stream alone %.2f s), etcdctl snapshot save %.2f s (%.1f MiB/s): muster/etcdctl time ratio %.2f",
                         mib, musterSeconds, mib / musterSeconds, again.seconds, etcdctlSeconds, mib / etcdctlSeconds, musterSeconds / etcdctlSeconds))

            // prune: only muster's names, for this cluster, beyond --keep
            let directory = (file as NSString).deletingLastPathComponent
            // (a planted name dated in the future would have pushed the new snapshot out: only
            // recorded snapshots are pruned)
            let planted = "\(directory)/main-1-29990101T000000Z.db"
            for decoy in ["main-notes.db", "other-5-20260101T000000Z.db", "main-1-29990101T000000Z.db"] {
                _ = FileManager.default.createFile(atPath: "\(directory)/\(decoy)", contents: Data("x".utf8))
            }
            var keepTwo = SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
            keepTwo.keep = 2
            let third = try #require(try await keepTwo.run())
            #expect(third.pruned == [file])
            #expect(FileManager.default.fileExists(atPath: third.snapshot.file) && FileManager.default.fileExists(atPath: again.snapshot.file))
            #expect(FileManager.default.fileExists(atPath: "\(directory)/main-notes.db") && FileManager.default.fileExists(atPath: "\(directory)/other-5-20260101T000000Z.db"))
            #expect(FileManager.default.fileExists(atPath: planted), "an unrecorded file is not muster's to prune")
            try FileManager.default.removeItem(atPath: planted)
            let listing = try SnapshotListing.run(builder: builder, outDirectory: nil)
            #expect(listing.entries.map(\.path) == [again.snapshot.file, third.snapshot.file])
            #expect(try builder.build().state.clusterRecord("main")?.snapshots.map(\.file) == [again.snapshot.file, third.snapshot.file])
            let listed = try cli(["snapshot", "list", builder.inventoryPath, "--output", "json"])
            #expect(listed.succeeded && Self.json(listed.stdout)?["clusters"]?[0]?["snapshots"]?[1]?["revision"]?.value as? Int == Int(third.snapshot.revision),
                    "\(listed.stdoutText) \(listed.stderrText)")
            // Each names the cluster it was taken of, and whether that is the present one.
            let listedThird = Self.json(listed.stdout)?["clusters"]?[0]?["snapshots"]?[1]
            let recordedID = try builder.build().state.clusterRecord("main")?.clusterID
            #expect(recordedID != nil && listedThird?["cluster_id"]?.value as? String == recordedID, "\(listed.stdoutText)")
            #expect(listedThird?["current_incarnation"]?.value as? Bool == true, "\(listed.stdoutText)")

            // a flipped byte: refused before any host is touched
            let damaged = directory + "/damaged.db"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: third.snapshot.file))
            bytes[bytes.count / 2] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: damaged))
            let before = try hostListings()
            var forced = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(), snapshot: damaged)
            forced.force = true
            do {
                _ = try await forced.run()
                Issue.record("a damaged snapshot was restored")
            } catch let error as ClassifiedError {
                #expect(error.kind == .refused && error.message.contains("damaged"), "\(error)")
            }
            // a whole snapshot put in the place of a recorded one: its own digest holds, the
            // record's does not
            _ = try await client.put("/swap", "a later revision")
            var elsewhere = SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
            elsewhere.outDirectory = scratch.path
            let later = try #require(try await elsewhere.run())
            #expect(later.snapshot.sha256 != again.snapshot.sha256)
            let original = try Data(contentsOf: URL(fileURLWithPath: again.snapshot.file))
            try Data(contentsOf: URL(fileURLWithPath: later.snapshot.file)).write(to: URL(fileURLWithPath: again.snapshot.file))
            forced.snapshot = again.snapshot.file
            do {
                _ = try await forced.run()
                Issue.record("a snapshot swapped under a recorded name was restored")
            } catch let error as ClassifiedError {
                #expect(error.kind == .refused && error.message.contains("is not the snapshot muster saved under that name"), "\(error)")
                #expect(error.message.contains(again.snapshot.sha256), "\(error)")
            }
            try original.write(to: URL(fileURLWithPath: again.snapshot.file))
            // a healthy cluster without --force: refused
            do {
                _ = try await Restore(builder: builder, options: DeploySandbox.options, progress: Progress(), snapshot: third.snapshot.file).run()
                Issue.record("a restore over a healthy cluster went ahead without --force")
            } catch let error as ClassifiedError {
                #expect(error.kind == .refused && error.message.contains("--force"), "\(error)")
            }
            let unchanged = try hostListings()
            #expect(unchanged == before, "a refused restore changed a host: \(before) -> \(unchanged)")
            let refused = try cli(["restore", builder.inventoryPath, "--from", damaged, "--force", "--output", "json"])
            #expect(refused.status == 1 && Self.json(refused.stdout)?["error"]?["kind"]?.value as? String == "refused", "\(refused.stdoutText) \(refused.stderrText)")

            // members stopped, every data dir wiped by hand: restore brings the keys back
            try await DeploySandbox.down(builder, wipe: false)
            for host in Self.hosts { _ = try DeploySandbox.exec(host, "rm -rf /var/lib/etcd/main") }
            forced.snapshot = third.snapshot.file
            let restored = try #require(try await forced.run())
            #expect(restored.report.ok, "\(restored.report.table())")
            #expect(restored.members.allSatisfy { $0.movedAside == nil }, "nothing to move aside after the wipe")
            #expect(restored.revision == third.snapshot.revision)
            try await checkKeys(keyCount, client: client)
            let record = try #require(try builder.build().state.clusterRecord("main"))
            #expect(record.restoreToken == restored.token)
            #expect(record.clusterID == EtcdIDs.hex(restored.clusterID))
            #expect(record.founders.map(\.id) == restored.members.map { EtcdIDs.hex($0.id) })
            let verified = try await Verification.run(workspace: try await builder.load(lock: false), options: DeploySandbox.options,
                                                      viaSSH: false, progress: Progress(quiet: true))
            #expect(verified.allSatisfy { $0.ok }, "\(verified.map { $0.table() })")
            // a plain `up` afterwards: nothing moves, nothing restarts
            let running = try pids()
            let plain = try await DeploySandbox.up(builder)
            #expect(plain.reports.allSatisfy { $0.ok }, "\(plain.reports.map { $0.table() })")
            #expect(!plain.changed && plain.bytesSent == 0, "\(plain.hosts)")
            #expect(try pids() == running, "a member restarted after the restore")

            // cut after the first member's data was restored; the same command again finishes
            let cut = try cli(["restore", builder.inventoryPath, "--from", again.snapshot.file, "--force"], failpoint: "restore.after-first-member")
            #expect(!cut.succeeded && cut.stderrText.contains("failpoint restore.after-first-member"), "\(cut.stderrText)")
            #expect(try DeploySandbox.exec("host1", "ls -d /var/lib/etcd/main.muster-before-restore-* | wc -l") == "1")
            #expect(try DeploySandbox.exec("host2", "ls -d /var/lib/etcd/main.muster-before-restore-* 2>/dev/null | wc -l") == "0")
            let resumed = try cli(["restore", builder.inventoryPath, "--from", again.snapshot.file, "--output", "json"])
            #expect(resumed.succeeded && Self.json(resumed.stdout)?["ok"]?.value as? Bool == true, "\(resumed.stdoutText) \(resumed.stderrText)")
            #expect(try DeploySandbox.exec("host1", "ls -d /var/lib/etcd/main.muster-before-restore-* | wc -l") == "2", "host1's half-done data was moved aside too, not deleted")
            try await checkKeys(keyCount, client: client)
            let after = try await Verification.run(workspace: try await builder.load(lock: false), options: DeploySandbox.options,
                                                   viaSSH: false, progress: Progress(quiet: true))
            #expect(after.allSatisfy { $0.ok }, "\(after.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
            // The cluster is gone with its record: its snapshots are listed as of an earlier one.
            let afterWipe = try cli(["snapshot", "list", builder.inventoryPath])
            #expect(afterWipe.succeeded && afterWipe.stdoutText.contains("unknown (not recorded: an earlier cluster's, or copied in)"),
                    "\(afterWipe.stdoutText) \(afterWipe.stderrText)")
            withExtendedLifetime(scratch) {}
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// etcd 3.5.16 restores with etcdutl, its dry run listing exactly the steps the run then
    /// reports; its snapshot is refused by a 3.4 inventory.
    @Test func restoreOnEtcd35WithEtcdutlAndRefusalOnAnOlderMinor() async throws {
        let binary = DeploySandbox.etcd35
        guard FileManager.default.isExecutableFile(atPath: binary),
              FileManager.default.isExecutableFile(atPath: (binary as NSString).deletingLastPathComponent + "/etcdutl") else {
            Issue.record("etcd 3.5 (with etcdutl) missing at \(binary): run scripts/setup.sh (it fetches it)")
            return
        }
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: binary)
            let first = try await DeploySandbox.up(builder)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")
            let client = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host2").address):2379", timeout: 10)
            _ = try await writeKeys(50, client: client)
            // snapshot save's dry run names the source and the step the run then reports.
            let plannedSave = MembershipTests.Lines(), saidSave = MembershipTests.Lines()
            var dryRunSave = SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { plannedSave.add($0.line) }))
            dryRunSave.member = "host3"
            dryRunSave.dryRun = true
            #expect(try await dryRunSave.run() == nil)
            var save = SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { saidSave.add($0.line) }))
            save.member = "host3"
            let saved = try #require(try await save.run())
            #expect(plannedSave.steps.count == 1 && plannedSave.steps == saidSave.steps && plannedSave.steps[0].contains("from host3 on host3")
                    && plannedSave.steps[0].contains("keep there what --keep-last 5 keeps"),
                    "dry run: \(plannedSave.steps)\nrun: \(saidSave.steps)")
            #expect(saved.member == "host3" && saved.clusterVersion == "3.5.0")
            _ = try await client.put("/written-after-the-snapshot", "gone after the restore")

            // a 3.4 inventory on the same hosts refuses the 3.5 snapshot before contacting any host
            let older = try DeploySandbox.inventory(.static)
            var refused = Restore(builder: older, options: DeploySandbox.options, progress: Progress(), snapshot: saved.snapshot.file)
            refused.force = true
            do {
                _ = try await refused.run()
                Issue.record("a 3.5 snapshot was restored onto etcd 3.4")
            } catch let error as ClassifiedError {
                #expect(error.kind == .refused && error.message.contains("newer"), "\(error)")
            }

            // The dry run lists the steps the run then takes, line for line, and changes nothing.
            let planned = MembershipTests.Lines(), said = MembershipTests.Lines()
            let before = try pids()
            var dryRun = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { planned.add($0.line) }),
                                 snapshot: saved.snapshot.file)
            dryRun.dryRun = true
            #expect(try await dryRun.run() == nil)
            #expect(try pids() == before, "the dry run stopped a member")
            #expect(try await client.get("/written-after-the-snapshot").kvs.count == 1, "the dry run restored")

            // over the running cluster with --force: old data moved aside, the snapshot's keys back
            var restore = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { said.add($0.line) }),
                                  snapshot: saved.snapshot.file)
            restore.force = true
            let restored = try #require(try await restore.run())
            #expect(restored.report.ok, "\(restored.report.table())")
            #expect(planned.steps.map { $0.components(separatedBy: ":")[0].replacingOccurrences(of: "cluster main, step ", with: "") }
                        == ["ship", "stop", "stop", "stop", "restore-data", "restore-data", "restore-data", "write-configs",
                            "start", "start", "start", "health-wait"], "\(planned.all)")
            #expect(planned.steps == said.steps, "dry run: \(planned.steps)\nrun: \(said.steps)")
            #expect(restored.members.allSatisfy { $0.movedAside?.contains(".muster-before-restore-") == true })
            #expect(try DeploySandbox.exec("host1", "ls /opt/muster/bin") .contains("etcdutl-3.5.16"))
            try await checkKeys(50, client: client)
            #expect(try await client.get("/written-after-the-snapshot").kvs.isEmpty)
            let running = try pids()
            let plain = try await DeploySandbox.up(builder)
            #expect(plain.reports.allSatisfy { $0.ok } && !plain.changed, "\(plain.reports.map { $0.table() }) \(plain.hosts)")
            #expect(try pids() == running)
            try await DeploySandbox.down(builder, wipe: true)
            try? FileManager.default.removeItem(atPath: (saved.snapshot.file as NSString).deletingLastPathComponent)
        }
    }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Subscripts over what JSONSerialization returns.
struct JSONNode {
    let value: Any
    init(_ value: Any) { self.value = value }
    subscript(key: String) -> JSONNode? { (value as? [String: Any])?[key].map(JSONNode.init) }
    subscript(index: Int) -> JSONNode? {
        guard let array = value as? [Any], array.indices.contains(index) else { return nil }
        return JSONNode(array[index])
    }
}
