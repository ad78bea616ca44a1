import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterWorkspace
import MusterSandbox
import MusterPlan

/// Per-cluster member binaries and the upgrade guards on real hosts with real etcd 3.4.23,
/// 3.5.16 and 3.5.30. No 3.6 binary exists here: a 3.6 target is `member.version: 3.6.14` on a
/// 3.5 binary, which the guard refuses before that binary is run or shipped anywhere (the test
/// checks every file muster installs or writes, and every member's pid).
@Suite struct VersionLineTests {
    private func setMember(_ member: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"member:\n  binary: \S+\n(  version: \S+\n)?"#, with: "member:\n\(member)",
                                               options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    /// Every file under muster's install and config dirs with its hash, and the member's pid.
    private func hostState(_ host: String) throws -> String {
        try DeploySandbox.exec(host, "find /opt/muster /etc/etcd /etc/systemd/system -type f -exec sha256sum {} + 2>/dev/null | sort; cat /run/etcd/main.pid")
    }

    private func serverVersion(_ host: String, port: Int) throws -> String {
        let address = try DeploySandbox.host(host).address
        return try LocalProcess.run(["curl", "-s", "--max-time", "5", "http://\(address):\(port)/version"]).stdoutText
    }

    @Test func eachClusterRunsItsOwnBinary() async throws {
        let sid = try MemberBinary.versionBlocking(of: DeploySandbox.etcdSid)
        #expect(sid != "3.5.16", "sid's etcd is \(sid)")
        try await onSandbox {
            // main on the inventory's 3.5.16; side, on two of the same hosts, on sid's own.
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35) { text in
                text + "  side:\n    members: [host1, host2]\n    client_port: 3379\n    peer_port: 3380\n    tls: false\n    member: { binary: \(DeploySandbox.etcdSid) }\n"
            }
            let workspace = try builder.build()
            #expect(workspace.memberVersions == ["main": "3.5.16", "side": sid])
            // Earlier scenarios may have left binaries in the install dir: host3's must gain none of side's.
            _ = try DeploySandbox.exec("host3", "rm -f /opt/muster/bin/etcd-\(sid)")
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.count == 2 && formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            for host in ["host1", "host2", "host3"] {
                #expect(try serverVersion(host, port: 2379).contains("\"etcdserver\":\"3.5.16\""), "\(host) main")
                #expect(try DeploySandbox.exec(host, "readlink /proc/$(cat /run/etcd/main.pid)/exe") == "/opt/muster/bin/etcd-3.5.16")
            }
            for host in ["host1", "host2"] {
                #expect(try serverVersion(host, port: 3379).contains("\"etcdserver\":\"\(sid)\""), "\(host) side")
                #expect(try DeploySandbox.exec(host, "readlink /proc/$(cat /run/etcd/side.pid)/exe") == "/opt/muster/bin/etcd-\(sid)")
            }
            #expect(try DeploySandbox.exec("host3", "ls /opt/muster/bin; true").split(separator: "\n").contains("etcd-3.5.16"))
            #expect(try DeploySandbox.exec("host3", "[ -e /opt/muster/bin/etcd-\(sid) ] && echo shipped; true") == "", "host3 runs no side member, but got its binary")
            // A second run finds both binaries in place on every host.
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0, "\(again.hosts)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func upgradesThatSkipALineOrLackTheFloorAreRefusedWithNothingChanged() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)  // etcd 3.4.23
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let hosts = ["host1", "host2", "host3"]

            // 3.4.23 -> "3.6.14": two minors at once.
            var before = try hosts.map(hostState)
            try setMember("  binary: \(DeploySandbox.etcd35)\n  version: 3.6.14\n", in: builder)
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("3.4 -> 3.6 went ahead")
            } catch let error as DeployError {
                #expect(error.kind == .refused)
                #expect(error.message.contains("rule one-minor-at-a-time"), "\(error)")
                #expect(error.message.contains("host1: runs etcd 3.4.23"), "\(error)")
                #expect(error.message.contains("upgrade to 3.5 first"), "\(error)")
            }
            #expect(try hosts.map(hostState) == before, "a refused upgrade changed a host")

            // To 3.5.16 for real, then 3.5.16 -> "3.6.14": 3.5.32 first.
            try setMember("  binary: \(DeploySandbox.etcd35)\n", in: builder)
            let upgraded = try await DeploySandbox.up(builder)
            #expect(upgraded.reports.first?.endpoints.allSatisfy { $0.version == "3.5.16" } == true)
            before = try hosts.map(hostState)
            // Earlier tests may have left their binaries there: what counts is that this run adds none.
            let installedBefore = try hosts.map { try DeploySandbox.exec($0, "ls /opt/muster/bin") }
            try setMember("  binary: \(DeploySandbox.etcd35)\n  version: 3.6.14\n", in: builder)
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("3.5.16 -> 3.6 went ahead")
            } catch let error as DeployError {
                #expect(error.kind == .refused)
                #expect(error.message.contains("rule 3.5.32-before-3.6"), "\(error)")
                #expect(error.message.contains("upgrade to 3.5.32+ first: set member.binary to it and run up"), "\(error)")
                #expect(error.message.contains("nothing was changed"), "\(error)")
            }
            #expect(try hosts.map(hostState) == before, "a refused upgrade changed a host")
            #expect(try hosts.map { try DeploySandbox.exec($0, "ls /opt/muster/bin") } == installedBefore, "the 3.6 binary was shipped")

            try setMember("  binary: \(DeploySandbox.etcd35)\n", in: builder)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}

/// `etcdutl check v2store` as the 3.5 -> 3.6 guard runs it on every member's data dir, beside
/// the running member: here sid's etcdutl (3.5.30; the check exists from 3.5.18) on a 3.5.16
/// cluster, which has the same v2store the 3.6 tool reads.
@Suite struct V2StoreCheckTests {
    @Test func customV2DataIsFoundOnTheMemberThatHoldsIt() async throws {
        try await onSandbox {
            // A snapshot every 10 entries: the v2store is in the .snap files the tool reads.
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "    bootstrap: static\n", with: "    bootstrap: static\n    etcd: { enable-v2: true, snapshot-count: 10 }\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let workspace = try builder.build()
            let cluster = try #require(workspace.plan.cluster(named: "main"))
            let address = try DeploySandbox.host("host1").address
            func put(_ path: String, _ body: String) throws {
                _ = try LocalProcess.run(["curl", "-s", "--max-time", "5", "-X", path.hasPrefix("/v2") ? "PUT" : "POST",
                                          "http://\(address):2379\(path)", "-d", body])
            }
            for index in 0..<25 { try put("/v3/kv/put", #"{"key":"\#(Data("k\(index)".utf8).base64EncodedString())","value":"dg=="}"#) }
            let etcdutl = try ShippedBinary(localPath: (DeploySandbox.etcdSid as NSString).deletingLastPathComponent + "/etcdutl",
                                            remotePath: "/opt/muster/bin/etcdutl-check")
            var snapshotIndices: [String: UInt64] = [:]
            func check() async throws -> [String: UpgradeFacts.V2StoreCheck] {
                let fleet = try await Fleet.connect(workspace.inventory.hosts, options: DeploySandbox.options, progress: Progress(quiet: true))
                do {
                    let operations = try await ClusterOperations.gather(cluster, inventory: workspace.inventory, fleet: fleet,
                                                                        progress: Progress(quiet: true), options: DeploySandbox.options, tls: [:])
                    let found = try await operations.checkV2Stores(cluster, etcdutl: etcdutl)
                    for member in cluster.members {
                        snapshotIndices[member.name] = operations.facts[member.host]?.members["main"]?.newestSnapshotIndex
                    }
                    await fleet.close()
                    return found
                } catch {
                    await fleet.close()
                    throw error
                }
            }
            #expect(try await check() == ["host1": .passed, "host2": .passed, "host3": .passed])
            // Preflight's facts read each member's newest .snap (the 3.6 -> 3.7 rule's input):
            // with a snapshot every 10 entries, 25 writes have made one past index 10.
            let first = snapshotIndices
            #expect(first.count == 3 && first.values.allSatisfy { $0 >= 10 }, "\(first)")
            // A key through the v2 API, then enough writes for a snapshot that holds it.
            try put("/v2/keys/custom", "value=x")
            for index in 0..<25 { try put("/v3/kv/put", #"{"key":"\#(Data("m\(index)".utf8).base64EncodedString())","value":"dg=="}"#) }
            let found = try await check()
            #expect(found.values.allSatisfy { $0 == .failed("Error: detected custom content in v2store") }, "\(found)")
            #expect(found.count == 3)
            #expect(cluster.members.allSatisfy { (snapshotIndices[$0.name] ?? 0) > (first[$0.name] ?? .max) }, "newer snapshots since: \(first) -> \(snapshotIndices)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
