import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterEtcd
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// `snapshot save|list|prune --out s3://...` and `restore --from s3://...` through the built CLI,
/// against a real etcd 3.5.16 cluster on the deploy sandbox and moto's S3 server on loopback,
/// cross-checked with boto3.
@Suite(.serialized) struct ObjectStoreSnapshotTests {
    static let bucket = "muster-backups"

    /// The built CLI with the S3 server's environment (credentials only there, never in argv).
    func cli(_ arguments: [String], _ moto: MotoServer, environment extra: [String: String] = [:], failpoint: String? = nil) throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment.merging(moto.environment()) { $1 }.merging(extra) { $1 }
        environment["MUSTER_SANDBOX_ONLY"] = "1"
        if let failpoint { environment["MUSTER_FAILPOINT"] = failpoint } else { environment.removeValue(forKey: "MUSTER_FAILPOINT") }
        return try LocalProcess.run([MusterCLI.binary] + arguments + ["--templates", repositoryRoot + "/templates"],
                                    environment: environment, timeout: 300)
    }

    func withClusterAndS3<T: Sendable>(holdingPartsUntil gate: Int? = nil, _ body: (PlanBuilder, MotoServer, EtcdClient) async throws -> T) async throws -> T {
        try MotoServer.requireVenv()
        return try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok })
            let directory = try TemporaryDirectory(prefix: "muster-s3")
            let moto = try MotoServer(logDirectory: directory.path, holdingPartsUntil: gate)
            defer { moto.stop() }
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='\(Self.bucket)')")
            let client = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host1").address):2379", timeout: 20)
            return try await body(builder, moto, client)
        }
    }

    func stateIdentity(_ builder: PlanBuilder) throws -> String {
        try builder.build().state.identity()!.id
    }

    /// An object muster wrote is boto3's too (listed, same sha256 as its metadata and as
    /// `list` says); retention after each save leaves another state's, another cluster's and a
    /// foreign object of a muster name alone.
    @Test func savedSnapshotsAreBoto3sAndRetentionTouchesOnlyThisStatesOwnOn35() async throws {
        try await withClusterAndS3 { builder, moto, client in
            _ = try await client.put("/s3/key", "kept")
            let inventory = builder.inventoryPath
            // Planted: muster names, not this state's snapshots of main.
            _ = try moto.python("""
                import boto3
                c = boto3.client('s3')
                c.put_object(Bucket='\(Self.bucket)', Key='prod/main-1-20200101T000000Z.db', Body=b'copied in by hand')
                c.put_object(Bucket='\(Self.bucket)', Key='prod/main-2-20200102T000000Z.db', Body=b'another controller', Metadata={'muster-cluster': 'main', 'muster-state': 'another-state'})
                c.put_object(Bucket='\(Self.bucket)', Key='prod/other-3-20200103T000000Z.db', Body=b'another cluster', Metadata={'muster-cluster': 'other', 'muster-state': '\(try stateIdentity(builder))'})
                c.put_object(Bucket='\(Self.bucket)', Key='prod/notes.txt', Body=b'not a snapshot')
                """)
            var saves = ""
            for _ in 0..<3 {
                let save = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/prod", "--keep-last", "1", "--sse", "AES256"], moto)
                #expect(save.status == 0, "\(save.stderrText)")
                saves += save.stdoutText + save.stderrText
            }
            // The step names the bucket and the rules the operator gave, not a local path.
            #expect(saves.contains("into s3://\(Self.bucket)/prod, check it, record it, keep there what --keep-last 1 keeps"), "\(saves)")
            let keys = try moto.python("""
                import boto3
                print("\\n".join(o['Key'] for o in boto3.client('s3').list_objects_v2(Bucket='\(Self.bucket)')['Contents']))
                """).split(separator: "\n").map(String.init)
            let ours = keys.filter { $0.wholeMatch(of: /prod\/main-\d+-\d{8}T\d{6}Z\.db/) != nil && !$0.hasSuffix("20200101T000000Z.db") && !$0.hasSuffix("20200102T000000Z.db") }
            #expect(ours.count == 1, "\(keys) \(saves)")
            #expect(Set(keys).isSuperset(of: ["prod/main-1-20200101T000000Z.db", "prod/main-2-20200102T000000Z.db", "prod/other-3-20200103T000000Z.db", "prod/notes.txt"]))
            #expect(!keys.contains { $0.contains(".muster-partial") }, "\(keys)")

            let list = try cli(["snapshot", "list", inventory, "--out", "s3://\(Self.bucket)/prod", "--output", "json"], moto)
            #expect(list.status == 0, "\(list.stderrText)")
            let document = try JSONSerialization.jsonObject(with: list.stdout) as? [String: Any]
            let snapshots = ((document?["clusters"] as? [[String: Any]])?.first?["snapshots"] as? [[String: Any]]) ?? []
            let mine = snapshots.first { ($0["object"] as? String) == "s3://\(Self.bucket)/\(ours.first ?? "")" }
            #expect(mine?["this_state"] as? Bool == true)
            #expect(mine?["etcd_version"] as? String == "3.5.16")
            #expect(snapshots.first { ($0["object"] as? String)?.hasSuffix("main-2-20200102T000000Z.db") == true }?["this_state"] as? Bool == false)
            let boto = try moto.python("""
                import boto3, hashlib
                o = boto3.client('s3').get_object(Bucket='\(Self.bucket)', Key='\(ours.first ?? "")')
                print(hashlib.sha256(o['Body'].read()).hexdigest(), o['Metadata']['muster-sha256'], o['Metadata']['muster-cluster'], o['Metadata']['muster-revision'], o.get('ServerSideEncryption'))
                """).split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(boto.count == 5 && boto[0] == boto[1], "\(boto)")
            #expect(boto[0] == mine?["sha256"] as? String)
            #expect(boto[2] == "main")
            #expect(Int64(boto[3]) == mine?["revision"] as? Int64 ?? (mine?["revision"] as? NSNumber)?.int64Value)
            #expect(boto[4] == "AES256")

            // prune alone: --dry-run removes nothing and says which rule keeps what.
            let dry = try cli(["snapshot", "prune", inventory, "--out", "s3://\(Self.bucket)/prod", "--keep-daily", "1", "--dry-run"], moto)
            #expect(dry.status == 0, "\(dry.stderrText)")
            #expect(dry.stdoutText.contains("keep s3://\(Self.bucket)/\(ours[0]) (daily)"), "\(dry.stdoutText)")
            #expect(dry.stdoutText.contains("left alone s3://\(Self.bucket)/prod/main-2-20200102T000000Z.db"), "\(dry.stdoutText)")
        }
    }

    /// A snapshot boto3 uploaded (with muster's sha256 in its metadata) is restored by muster;
    /// the same bytes damaged are refused by sha256 before any host is touched.
    @Test func aBoto3UploadIsRestoredAndADamagedOneRefusedBeforeAnyHostOn35() async throws {
        try await withClusterAndS3 { builder, moto, client in
            let inventory = builder.inventoryPath
            _ = try await client.put("/s3/before", "in the snapshot")
            let local = try TemporaryDirectory(prefix: "muster-s3-local")
            let save = try cli(["snapshot", "save", inventory, "--out", local.path], moto)
            #expect(save.status == 0, "\(save.stderrText)")
            let file = try FileManager.default.contentsOfDirectory(atPath: local.path).filter { $0.hasSuffix(".db") }.map { local.path + "/" + $0 }[0]
            let sha = try Digest.sha256Hex(fileAt: file)
            _ = try await client.put("/s3/after", "not in it")
            _ = try moto.python("""
                import boto3, sys
                c = boto3.client('s3')
                data = open(sys.argv[1], 'rb').read()
                c.put_object(Bucket='\(Self.bucket)', Key='uploaded/good.db', Body=data, Metadata={'muster-sha256': sys.argv[2]})
                damaged = bytearray(data); damaged[5000] ^= 0xff
                c.put_object(Bucket='\(Self.bucket)', Key='uploaded/damaged.db', Body=bytes(damaged), Metadata={'muster-sha256': sys.argv[2]})
                """, [file, sha])
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }

            let refused = try cli(["restore", inventory, "--from", "s3://\(Self.bucket)/uploaded/damaged.db", "--force"], moto)
            #expect(refused.status == 1, "\(refused.stderrText)")
            #expect(refused.stderrText.contains("damaged"), "\(refused.stderrText)")
            #expect(refused.stderrText.contains("its metadata says \(sha)"), "\(refused.stderrText)")
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } == pids, "a member was restarted")
            #expect(try await client.get("/s3/after").kvs.first?.value == "not in it")

            let restored = try cli(["restore", inventory, "--from", "s3://\(Self.bucket)/uploaded/good.db", "--force"], moto)
            #expect(restored.status == 0, "\(restored.stderrText)")
            let after = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host2").address):2379", timeout: 20)
            #expect(try await after.get("/s3/before").kvs.first?.value == "in the snapshot")
            #expect(try await after.get("/s3/after").kvs.isEmpty)
            let downloaded = try builder.build().state.directory + "/snapshots/downloaded/good.db"
            #expect(try FileManager.default.attributesOfItem(atPath: downloaded)[.posixPermissions] as? Int == 0o600)
        }
    }

    /// A save cut while parts are going up (Ctrl-C at the second part: the first is in S3)
    /// aborts the multipart upload: no upload is left, no object under the prefix. The endpoint
    /// down fails the save naming it.
    @Test func aCutUploadLeavesNoObjectAndNoUploadAndAnEndpointDownIsNamedOn35() async throws {
        try await withClusterAndS3 { builder, moto, client in
            let inventory = builder.inventoryPath
            // About 18 MB: two 8 MiB parts go up while the stream runs.
            let value = String(repeating: "0123456789abcdef", count: 1_200_000 / 16)
            for i in 0..<15 { _ = try await client.put("/s3/large-\(i)", value) }
            let cut = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/prod"], moto, failpoint: "snapshot.upload-part@2:int")
            #expect(cut.status == 130, "\(cut.stderrText)")
            #expect(cut.stderrText.contains("failpoint snapshot.upload-part"), "\(cut.stderrText)")
            let left = try moto.python("""
                import boto3
                c = boto3.client('s3')
                print(len(c.list_multipart_uploads(Bucket='\(Self.bucket)').get('Uploads', [])), c.list_objects_v2(Bucket='\(Self.bucket)')['KeyCount'])
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(left == "0 0", "\(cut.stderrText)")
            let snapshots = try builder.build().state.directory + "/snapshots"
            #expect(try FileManager.default.contentsOfDirectory(atPath: snapshots).filter { $0.hasSuffix(".partial") }.isEmpty)

            // Uncut, the same save completes: the cut was the only thing in its way.
            let whole = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/prod"], moto)
            #expect(whole.status == 0, "\(whole.stderrText)")

            let port = try FreePorts.pick(1)[0]
            let down = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/prod"], moto,
                               environment: ["AWS_ENDPOINT_URL_S3": "http://127.0.0.1:\(port)"])
            #expect(down.status == 1, "\(down.stderrText)")
            #expect(down.stderrText.contains("S3 endpoint http://127.0.0.1:\(port)"), "\(down.stderrText)")
            #expect(down.stderrText.contains("connection refused"), "\(down.stderrText)")
            #expect(!down.stderrText.contains(MotoServer.secretAccessKey))
        }
    }

    /// The save as shipped sends its parts side by side: with the server holding each part until
    /// two are held together, two are (one at a time, the first would wait out the gate's 20 s
    /// alone); and the object restores byte for byte as boto3 downloads it.
    @Test func aSaveSendsItsPartsSideBySideOn35() async throws {
        try await withClusterAndS3(holdingPartsUntil: 2) { builder, moto, client in
            let inventory = builder.inventoryPath
            // About 18 MB: two whole 8 MiB parts while the stream runs.
            let value = String(repeating: "0123456789abcdef", count: 1_200_000 / 16)
            for i in 0..<15 { _ = try await client.put("/s3/large-\(i)", value) }
            let save = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/prod", "--output", "json"], moto)
            #expect(save.status == 0, "\(save.stderrText)")
            #expect(moto.partsInFlight() >= 2, "\(save.stderrText)")
            let checked = try moto.python("""
                import boto3, hashlib
                c = boto3.client('s3')
                key = [o['Key'] for o in c.list_objects_v2(Bucket='\(Self.bucket)', Prefix='prod/main-')['Contents']][0]
                o = c.get_object(Bucket='\(Self.bucket)', Key=key)
                print(hashlib.sha256(o['Body'].read()).hexdigest() == o['Metadata']['muster-sha256'], o['ContentLength'] > 16 << 20)
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(checked == "True True")
        }
    }

    /// The same rules in a local directory: `--keep` with `--keep-*`, then `snapshot prune`
    /// alone; a file of a muster name the record does not hold, and another cluster's, stay.
    @Test func localRetentionKeepsByRuleAndLeavesUnrecordedFilesOn35() async throws {
        try await withClusterAndS3 { builder, moto, client in
            let inventory = builder.inventoryPath
            let directory = try TemporaryDirectory(prefix: "muster-retention")
            let planted = [directory.path + "/main-1-20200101T000000Z.db", directory.path + "/other-1-20200101T000000Z.db"]
            for path in planted { FileManager.default.createFile(atPath: path, contents: Data("planted".utf8)) }
            for i in 0..<3 {
                _ = try await client.put("/s3/local", "\(i)")
                let save = try cli(["snapshot", "save", inventory, "--out", directory.path, "--keep", "2", "--keep-monthly", "1"], moto)
                #expect(save.status == 0, "\(save.stderrText)")
            }
            func ours() throws -> [String] {
                try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("main-") && !$0.hasPrefix("main-1-2020") }.sorted()
            }
            let afterSaves = try ours()
            #expect(afterSaves.count == 2, "\(afterSaves)")
            let dry = try cli(["snapshot", "prune", inventory, "--out", directory.path, "--keep-last", "1", "--dry-run"], moto)
            #expect(dry.status == 0, "\(dry.stderrText)")
            #expect(try ours().count == 2)
            #expect(dry.stdoutText.contains("would remove \(directory.path)/\(afterSaves[0])"), "\(dry.stdoutText)")
            let prune = try cli(["snapshot", "prune", inventory, "--out", directory.path, "--keep-last", "1", "--output", "json"], moto)
            #expect(prune.status == 0, "\(prune.stderrText)")
            #expect(try ours().count == 1)
            for path in planted { #expect(FileManager.default.fileExists(atPath: path), "\(path) is not muster's to prune") }
            let record = try builder.build().state.clusterRecord("main")
            let left = try ours()
            #expect(record?.snapshots.filter { $0.file.hasPrefix(directory.path) }.map { ($0.file as NSString).lastPathComponent } == left)
        }
    }

    /// The restore drill: a saved snapshot (a file, and an object in the bucket) restores on the
    /// controller, serves its keys at its revision; a damaged file fails it. Nothing of the
    /// drill is left running or on disk.
    @Test func snapshotCheckRestoresOnTheControllerAndServesTheKeysOn35() async throws {
        try await withClusterAndS3 { builder, moto, client in
            let inventory = builder.inventoryPath
            for i in 0..<25 { _ = try await client.put("/s3/check-\(i)", "\(i)") }
            let local = try TemporaryDirectory(prefix: "muster-check")
            #expect(try cli(["snapshot", "save", inventory, "--out", local.path], moto).status == 0)
            let save = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/drill"], moto)
            #expect(save.status == 0, "\(save.stderrText)")
            let file = try FileManager.default.contentsOfDirectory(atPath: local.path).filter { $0.hasSuffix(".db") }.map { local.path + "/" + $0 }[0]
            let facts = try SnapshotFile.inspect(file)
            let before = try Set(FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("muster-check-") })

            let check = try cli(["snapshot", "check", inventory, file, "--output", "json"], moto)
            #expect(check.status == 0, "\(check.stdoutText) \(check.stderrText)")
            let document = try JSONSerialization.jsonObject(with: check.stdout) as? [String: Any]
            #expect(document?["ok"] as? Bool == true)
            #expect((document?["keys"] as? NSNumber)?.intValue ?? 0 >= 25, "\(String(describing: document))")
            #expect((document?["served_revision"] as? NSNumber)?.int64Value == facts.revision)
            #expect((document?["recorded_revision"] as? NSNumber)?.int64Value == facts.revision)

            let key = save.stdoutText.split(separator: " ").first { $0.hasPrefix("s3://") }.map(String.init) ?? ""
            let saveAndCheck = try cli(["snapshot", "save", inventory, "--out", "s3://\(Self.bucket)/drill", "--check", "--output", "json"], moto)
            #expect(saveAndCheck.status == 0, "\(saveAndCheck.stdoutText) \(saveAndCheck.stderrText)")
            let saved = try JSONSerialization.jsonObject(with: saveAndCheck.stdout) as? [String: Any]
            #expect((saved?["check"] as? [String: Any])?["ok"] as? Bool == true, "\(String(describing: saved))")
            let remote = try cli(["snapshot", "check", inventory, key], moto)
            #expect(remote.status == 0, "\(remote.stdoutText) \(remote.stderrText)")
            #expect(remote.stdoutText.contains("restorable"), "\(remote.stdoutText)")

            var damaged = try Data(contentsOf: URL(fileURLWithPath: file))
            damaged[5000] ^= 0xff
            let damagedPath = local.path + "/damaged.db"
            try damaged.write(to: URL(fileURLWithPath: damagedPath))
            let refused = try cli(["snapshot", "check", inventory, damagedPath], moto)
            #expect(refused.status == 1, "\(refused.stdoutText) \(refused.stderrText)")
            #expect(refused.stderrText.contains("damaged"), "\(refused.stderrText)")

            let after = try Set(FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("muster-check-") })
            #expect(after == before, "scratch dirs left: \(after.subtracting(before))")
            let running = try LocalProcess.run(["pgrep", "-f", "--name check --data-dir"]).stdoutText
            #expect(running.isEmpty, "a drill's etcd still runs: \(running)")
        }
    }
}
