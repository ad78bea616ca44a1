import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport

/// The hosts know their cluster: a run from another state dir, a data dir of an earlier cluster
/// of the same name, or a member whose data was lost is refused at preflight, before anything is
/// written anywhere, naming the host and the way on.
@Suite struct ClusterIdentityTests {
    private static let hosts = ["host1", "host2", "host3"]

    /// Every file muster put under /etc/etcd on each host, by hash, and the members' pids.
    private func hostFiles() throws -> [String] {
        try Self.hosts.map {
            try DeploySandbox.exec($0, "find /etc/etcd -type f -exec sha256sum {} + | sort; cat /run/etcd/main.pid 2>/dev/null; true")
        }
    }

    private func setMembers(_ members: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"members: \[[^\]]*\]"#, with: "members: [\(members)]", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    /// Stops host's member and waits (bounded) until its process is gone.
    private func stopMember(on host: String) throws {
        _ = try DeploySandbox.exec(host, """
            p=$(cat /run/etcd/main.pid); kill "$p"; i=0
            while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
            """)
    }

    /// A marker's further lines, as the facts script prints them: an earlier muster's one-line
    /// marker leaves both unset; a path with spaces is kept whole.
    @Test func markerLinesAreReadBack() {
        let facts = HostFacts.parse("""
            main marker main host1 8e9e05c52164694d
            main marker-incarnation 0123456789abcdef0123456789abcdef
            main marker-state fedcba9876543210fedcba9876543210 /srv/my state/.muster/prod
            other marker other host1 1234
            """)
        #expect(facts.members["main"]?.marker == "main host1 8e9e05c52164694d")
        #expect(facts.members["main"]?.markerIncarnation == "0123456789abcdef0123456789abcdef")
        #expect(facts.members["main"]?.markerState == StateIdentity(id: "fedcba9876543210fedcba9876543210", directory: "/srv/my state/.muster/prod"))
        #expect(facts.members["other"]?.markerIncarnation == nil && facts.members["other"]?.markerState == nil)
        #expect(StateIdentity.isToken(StateIdentity.newToken()))
        #expect(!StateIdentity.isToken("0123456789abcdef0123456789abcdeg"))
    }

    /// Issue 34 (1): `cp inv/tls.yml other/copy.yml; muster up other/copy.yml` made a new CA and
    /// wrote its certificates to every member before failing; the original then failed verify.
    /// The sandbox's static inventory, TLS on, with `binary` as its members' etcd.
    static func tlsInventory(_ binary: String) throws -> PlanBuilder {
        try DeploySandbox.inventory(.static, binary: binary) { $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n") }
    }

    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func aCopiedInventoryIsRefusedAndTheOriginalStillVerifies(binary: String) async throws {
        try await onSandbox {
            let builder = try Self.tlsInventory(binary)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let original = try builder.build().state.directory
            let before = try hostFiles()

            let copyDirectory = try TemporaryDirectory.create(prefix: "muster-copy")
            let copyPath = copyDirectory + "/copy.yml"
            try FileManager.default.copyItem(atPath: builder.inventoryPath, toPath: copyPath)
            let copyState = LocalState.defaultDirectory(forInventory: copyPath)
            for arguments in [["up", copyPath, "--dry-run"], ["up", copyPath]] {
                let refused = try MusterCLI.run(arguments)
                #expect(refused.status != 0, "\(arguments): \(refused.stdoutText)")
                let said = refused.stderrText
                #expect(said.contains("preflight") && said.contains("--state \(original)") && said.contains(copyState), "\(arguments): \(said)")
            }
            #expect(try hostFiles() == before, "a refused up of the copy changed a host")
            #expect(!FileManager.default.fileExists(atPath: copyState + "/pki/main/ca.crt"), "the refused run kept a CA of its own")
            // verify of the copy names the state dir rather than making a CA no member trusts.
            let unverified = try MusterCLI.run(["verify", copyPath])
            #expect(unverified.status != 0 && unverified.stderrText.contains("--state"), "\(unverified.stderrText)")
            #expect(!FileManager.default.fileExists(atPath: copyState + "/pki/main/ca.crt"), "verify of the copy made a CA")

            // Markers and a record as an earlier muster wrote them (no state, no incarnation):
            // the CA files on the hosts tell the copy apart, and the original still runs.
            for host in Self.hosts { _ = try DeploySandbox.exec(host, "sed -i '2,$d' /etc/etcd/main/member.id") }
            let recordPath = original + "/clusters/main.json"
            var record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: recordPath))) as? [String: Any])
            #expect(record.removeValue(forKey: "incarnation") != nil, "the record keeps the cluster's incarnation")
            try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: recordPath))
            let legacy = try hostFiles()
            let refused = try MusterCLI.run(["up", copyPath])
            #expect(refused.status != 0 && refused.stderrText.contains("trusts another CA") && refused.stderrText.contains("--state"),
                    "\(refused.stderrText)")
            #expect(try hostFiles() == legacy, "a refused up of the copy changed a host")
            #expect(!FileManager.default.fileExists(atPath: copyState + "/pki/main/ca.crt"), "the refused run kept a CA of its own")
            let rerun = try await DeploySandbox.up(builder)
            #expect(rerun.reports.allSatisfy { $0.ok } && !rerun.changed, "\(rerun.reports.map { $0.table() }) \(rerun.hosts)")
            #expect(try hostFiles() == legacy, "a re-run of the original changed a host")

            // The original still verifies, every check passing.
            let reports = try await Verification.run(workspace: try builder.build(), options: DeploySandbox.options,
                                                     viaSSH: false, progress: Progress(quiet: true))
            #expect(reports.allSatisfy { $0.ok }, "\(reports.map { $0.table() })")
            // The copy given the original's state is the same inventory: nothing to do.
            let same = try MusterCLI.run(["up", copyPath, "--state", original])
            #expect(same.status == 0, "\(same.stderrText)")
            #expect(try hostFiles() == legacy, "up of the copy with --state changed a host")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Issue 34 (4): a recorded member whose data dir was emptied while the rest runs passed
    /// preflight and failed 5 s later ("peer port 2380 did not open").
    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func aMemberWhoseDataWasLostIsNamedAtPreflightWithReplaceAsTheWayOn(binary: String) async throws {
        try await onSandbox {
            let builder = try Self.tlsInventory(binary)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            try stopMember(on: "host3")
            _ = try DeploySandbox.exec("host3", "rm -rf /var/lib/etcd/main/member")
            let before = try hostFiles()

            for arguments in [["up", builder.inventoryPath, "--dry-run"], ["up", builder.inventoryPath]] {
                let refused = try MusterCLI.run(arguments)
                #expect(refused.status != 0, "\(arguments): \(refused.stdoutText)")
                #expect(refused.stderrText.contains("host3") && refused.stderrText.contains("muster replace --cluster main --member host3"),
                        "\(arguments): \(refused.stderrText)")
            }
            #expect(try hostFiles() == before, "a refused up changed a host")
            #expect(try DeploySandbox.exec("host3", "[ -e /var/lib/etcd/main/member ] && echo started || echo empty") == "empty")

            // The way on works, and the replaced member gets new keys (its host may have been
            // rebuilt after a compromise); the others keep theirs.
            let keys = "sha256sum /etc/etcd/main/pki/server.key /etc/etcd/main/pki/peer.key"
            let keysBefore = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, keys) }
            let replaced = try MusterCLI.run(["replace", builder.inventoryPath, "--cluster", "main", "--member", "host3"])
            #expect(replaced.status == 0, "\(replaced.stderrText)")
            let keysAfter = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, keys) }
            #expect(keysAfter[0] == keysBefore[0] && keysAfter[1] == keysBefore[1], "the other members' keys changed")
            let newKeys = keysAfter[2].split(separator: "\n"), oldKeys = keysBefore[2].split(separator: "\n")
            #expect(newKeys.count == 2 && zip(newKeys, oldKeys).allSatisfy { $0 != $1 }, "host3 kept its keys: \(keysAfter[2])")
            let again = try await DeploySandbox.up(builder)
            #expect(again.reports.allSatisfy { $0.ok }, "\(again.reports.map { $0.table() })")
            #expect(!again.changed && again.bytesSent == 0, "the state holds the new keys: \(again.hosts)")

            // Removed, a member's keys leave its host and the state; added again, it gets new ones.
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1, host2]")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            var shrink = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
            shrink.removeMembers = true
            shrink.wipeRemovedData = true
            let shrunk = try await shrink.run()
            #expect(shrunk.reports.allSatisfy { $0.ok }, "\(shrunk.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec("host3", "ls /etc/etcd/main/pki/*.key 2>/dev/null | wc -l") == "0", "a removed member's keys stayed")
            let pki = try builder.build().state.directory + "/pki/main"
            #expect(!FileManager.default.fileExists(atPath: pki + "/host3-server.key") && !FileManager.default.fileExists(atPath: pki + "/host3-peer.key"))
            try text.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let regrown = try await DeploySandbox.up(builder)
            #expect(regrown.reports.allSatisfy { $0.ok }, "\(regrown.reports.map { $0.table() })")
            let rejoined = try DeploySandbox.exec("host3", keys).split(separator: "\n")
            #expect(rejoined.count == 2 && zip(rejoined, newKeys).allSatisfy { $0 != $1 }, "host3 got its old keys back")
            try await DeploySandbox.down(builder, wipe: true)
            _ = try DeploySandbox.exec("host3", "rm -rf /var/lib/etcd/main.muster-replaced-*")
        }
    }

    /// Issue 34 (3): a removed member's data (kept, as it should be) outlives `down --wipe-data`
    /// (here: its host is off during the down, which names the data left there); the cluster
    /// built again under the same name derives the same IDs, and the member hung on its old data
    /// ("failed to find member") until `up` gave up after 60 s.
    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func aDataDirOfAnEarlierIncarnationIsRefusedAtPreflight(binary: String) async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: binary)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            try setMembers("host1, host2", in: builder)
            var shrink = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
            shrink.removeMembers = true
            _ = try await shrink.run()
            #expect(try DeploySandbox.exec("host3", "[ -d /var/lib/etcd/main/member ] && echo kept") == "kept")
            try DeploySandbox.powerOff("host3")
            do {
                try await DeploySandbox.down(builder, wipe: true)
                try DeploySandbox.powerOn("host3")
            } catch {
                try DeploySandbox.powerOn("host3")
                throw error
            }
            #expect(try DeploySandbox.exec("host3", "[ -d /var/lib/etcd/main/member ] && echo kept") == "kept")

            try setMembers("host1, host2, host3", in: builder)
            let before = try hostFiles()
            let (lines, error) = await DeploySandbox.upSaying(builder)
            let refusal = try #require(error as? DeployError, "the rebuild with host3's old data went ahead: \(lines)")
            #expect(refusal.step == "preflight", "\(refusal)")
            #expect(refusal.description.contains("host3") && refusal.description.contains("/var/lib/etcd/main"), "\(refusal)")
            #expect(try hostFiles() == before, "the refused rebuild changed a host")

            // Moved away as the refusal says, the cluster forms healthy.
            _ = try DeploySandbox.exec("host3", "mv /var/lib/etcd/main /var/lib/etcd/main.old")
            let rebuilt = try await DeploySandbox.up(builder)
            #expect(rebuilt.reports.allSatisfy { $0.ok }, "\(rebuilt.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
            _ = try DeploySandbox.exec("host3", "rm -rf /var/lib/etcd/main.old")
        }
    }
}
