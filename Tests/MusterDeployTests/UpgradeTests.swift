import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// A changed member binary is an upgrade: refused while a member is down and as a downgrade,
/// rolled one member at a time (leader last) with a client writing, done at the new cluster
/// version, every acknowledged write kept.
@Suite struct UpgradeTests {
    func setBinary(_ binary: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"  binary: \S+"#, with: "  binary: \(binary)", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    private func etcdctl(_ arguments: [String], pki: String) throws -> ProcessResult {
        let endpoints = try ["host1", "host2", "host3"].map { "https://\(try DeploySandbox.host($0).address):2379" }
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s",
                                     "--command-timeout=5s", "--cacert=\(pki)/ca.crt", "--cert=\(pki)/client.crt",
                                     "--key=\(pki)/client.key"] + arguments, environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    func exe(_ host: String) throws -> String {
        try DeploySandbox.exec(host, "readlink /proc/$(cat /run/etcd/main.pid)/exe 2>/dev/null || echo none")
    }

    @Test func etcd34To35ThenAPatchRollLeaderLastWithAWriterAndRefuseWhatIsUnsafe() async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster()

            // Refused while a member is down; nothing changes.
            _ = try DeploySandbox.exec("host3", "kill -9 $(cat /run/etcd/main.pid)")
            try setBinary(DeploySandbox.etcd35, in: builder)
            let installed = try ["host1", "host2"].map { try DeploySandbox.exec($0, "ls -l --time-style=+%s /opt/muster/bin; cat /etc/etcd/main/conf.yml /etc/etcd/main/start-member.sh | sha256sum") }
            await #expect(throws: DeployError.self) { _ = try await DeploySandbox.up(builder) }
            #expect(try exe("host1").hasSuffix("etcd-3.4.23"))
            #expect(try ["host1", "host2"].map { try DeploySandbox.exec($0, "ls -l --time-style=+%s /opt/muster/bin; cat /etc/etcd/main/conf.yml /etc/etcd/main/start-member.sh | sha256sum") } == installed,
                    "a refused upgrade shipped or wrote something")
            try setBinary("/usr/bin/etcd", in: builder)
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")

            // The upgrade, with a writer throughout.
            let upgraded = try await rollWithAWriter(to: DeploySandbox.etcd35, builder: builder, pki: pki, prefix: "upgrade")
            #expect(upgraded.backups.count == 1, "a snapshot before the upgrade")
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-3.5.16"), "\(host)") }
            let version = try LocalProcess.run(["curl", "-s", "--cacert", "\(pki)/ca.crt", "--cert", "\(pki)/client.crt",
                                                "--key", "\(pki)/client.key", "https://\(try DeploySandbox.host("host1").address):2379/version"])
            #expect(version.stdoutText.contains("\"etcdcluster\":\"3.5.0\""), "\(version.stdoutText)")
            #expect(upgraded.reports.first?.clusterVersion == "3.5.0", "verify shows the cluster version")
            #expect(upgraded.reports.first?.endpoints.allSatisfy { $0.version == "3.5.16" } == true, "and every member's server version")
            // The roll moved each member's certificates to 3.5's form (issue 28): the server
            // certificate serverAuth alone, the gateway presenting its own.
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "openssl x509 -in /etc/etcd/main/pki/server.crt -noout -ext extendedKeyUsage | tail -n 1 | tr -d ' '") == "TLSWebServerAuthentication", "\(host)")
                #expect(try DeploySandbox.exec(host, "grep -c 'client-cert-file: /etc/etcd/main/pki/gateway.crt' /etc/etcd/main/conf.yml") == "1", "\(host)")
            }
            let server = try LocalProcess.run(["curl", "-s", "--cacert", "\(pki)/ca.crt", "--cert", "\(pki)/host2-server.crt",
                                               "--key", "\(pki)/host2-server.key", "https://\(try DeploySandbox.host("host1").address):2379/version"])
            #expect(!server.succeeded, "host2's server key is still a client credential on host1: \(server.stdoutText)")

            // The backup taken before the upgrade is kept apart (issue 34, item 5): `snapshot
            // save --keep 1` again and again never prunes it.
            let beforeUpgrade = try #require(upgraded.backups.first)
            for _ in 0..<3 {
                var save = SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
                save.keep = 1
                _ = try await save.run()
            }
            #expect(FileManager.default.fileExists(atPath: beforeUpgrade), "snapshot save --keep 1 pruned the backup taken before the upgrade")

            // A downgrade is refused, nothing changed; the refusal names a snapshot that 3.4
            // members can restore: the one taken before the upgrade, not a 3.5 one.
            try setBinary("/usr/bin/etcd", in: builder)
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("a downgrade went ahead")
            } catch let error as DeployError {
                #expect(error.message.contains("muster restore --from \(beforeUpgrade)"), "\(error)")
            }
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-3.5.16"), "\(host)") }

            // A patch upgrade within 3.5 (Debian 13's 3.5.16 to sid's, 3.5.30 when written) rolls
            // the same way, every acknowledged write kept.
            let patch = try MemberBinary.versionBlocking(of: DeploySandbox.etcdSid)
            #expect(patch.hasPrefix("3.5.") && patch != "3.5.16", "sid's etcd is \(patch)")
            let patched = try await rollWithAWriter(to: DeploySandbox.etcdSid, builder: builder, pki: pki, prefix: "patch")
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-\(patch)"), "\(host)") }
            #expect(patched.reports.first?.endpoints.allSatisfy { $0.version == patch } == true, "every member runs \(patch)")

            // `down --wipe-data` leaves no copy of the keyspace muster made and no private key.
            _ = try DeploySandbox.exec("host1", "cp -a /var/lib/etcd/main /var/lib/etcd/main.muster-replaced-20260101T000000Z")
            try await DeploySandbox.down(builder, wipe: true)
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "ls -d /var/lib/etcd/main* /etc/etcd/main/pki/*.key 2>/dev/null; true") == "", "\(host)")
            }
        }
    }

    /// Sets the member binary and runs `up` while a client writes; every write that failed lies
    /// in one member's restart, every acknowledged one is there afterwards, each member restarted
    /// once.
    private func rollWithAWriter(to binary: String, builder: PlanBuilder, pki: String, prefix: String) async throws -> BringUp.Outcome {
        let writer = Task.detached { () -> (acknowledged: [String], failures: [ClosedRange<Date>]) in
            var acknowledged: [String] = [], failures: [ClosedRange<Date>] = []
            for index in 0..<600 {
                if Task.isCancelled { break }
                let sent = Date()
                if (try? etcdctl(["put", "/\(prefix)/\(index)", "u\(index)"], pki: pki))?.succeeded == true {
                    acknowledged.append("/\(prefix)/\(index)")
                } else {
                    failures.append(sent...Date())
                }
            }
            return (acknowledged, failures)
        }
        try setBinary(binary, in: builder)
        // muster's per-host events line the writer's failures up with each member's outage.
        let events = EventLog()
        let rolled = try await DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options,
                                       progress: Progress(observer: { events.append($0) })).run()
        writer.cancel()
        let (acknowledged, failures) = await writer.value
        // Every failed write overlaps one member's outage: from muster's `stopping X` (or its
        // leadership hand-over before X stops) to `X healthy`, with 1 s for the client to move
        // to another endpoint.
        let outages = events.outages(of: ["host1", "host2", "host3"])
        #expect(outages.count == 3, "one outage per member: \(events.all.map { "\($0.host) \($0.step) \($0.message)" })")
        for failure in failures {
            #expect(outages.contains { $0.lowerBound <= failure.upperBound && failure.lowerBound <= $0.upperBound.addingTimeInterval(1) },
                    "a write failed outside every member's restart: \(failure) vs \(outages)")
        }
        #expect(rolled.reports.allSatisfy { $0.ok }, "\(rolled.reports.map { $0.table() })")
        #expect(rolled.hosts.flatMap(\.restarted).count == 3, "\(rolled.hosts)")
        #expect(!acknowledged.isEmpty)
        for key in acknowledged {
            #expect(try etcdctl(["get", key, "--print-value-only"], pki: pki).stdoutText == "u\(key.split(separator: "/").last!)\n", "\(key) lost")
        }
        return rolled
    }
}

extension UpgradeTests {
    /// An upgrade cut after its first member restarted (muster killed at the second member's
    /// restart) leaves a mixed cluster; the next `up` upgrades the rest, not the first again.
    @Test func anUpgradeCutAfterTheFirstMemberFinishesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let endpoint = "http://\(try DeploySandbox.host("host1").address):2379"
            let etcdctl = { (arguments: [String]) throws -> ProcessResult in
                try LocalProcess.run(["etcdctl", "--endpoints=\(endpoint)", "--dial-timeout=3s"] + arguments,
                                     environment: ["ETCDCTL_API": "3"], timeout: 30)
            }
            #expect(try etcdctl(["put", "/before-upgrade", "kept"]).succeeded)
            try setBinary(DeploySandbox.etcd35, in: builder)

            let cut = try MusterCLI.up(builder, failpoint: "up.rolling-restart@2", timeout: 180)
            #expect(!cut.succeeded && cut.stderrText.contains("failpoint up.rolling-restart"), "\(cut.stderrText)")
            let versions = try ["host1", "host2", "host3"].map(exe)
            #expect(versions.filter { $0.hasSuffix("etcd-3.5.16") }.count == 1, "one member upgraded before the cut: \(versions)")

            let finished = try await DeploySandbox.up(builder)
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            #expect(finished.hosts.flatMap(\.restarted).count == 2, "only the two members still on 3.4: \(finished.hosts)")
            for host in ["host1", "host2", "host3"] { #expect(try exe(host).hasSuffix("etcd-3.5.16"), "\(host)") }
            #expect(try etcdctl(["get", "/before-upgrade", "--print-value-only"]).stdoutText == "kept\n")
            let version = try LocalProcess.run(["curl", "-s", endpoint + "/version"])
            #expect(version.stdoutText.contains("\"etcdcluster\":\"3.5.0\""), "\(version.stdoutText)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}

/// muster's per-host events of one run, in order.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [MusterDeploy.Progress.Event] = []

    func append(_ event: MusterDeploy.Progress.Event) { lock.lock(); events.append(event); lock.unlock() }

    var all: [MusterDeploy.Progress.Event] { lock.lock(); defer { lock.unlock() }; return events }

    /// For each host, from its first `stopping` or `moving leadership` event to the next
    /// `healthy` one after it.
    func outages(of hosts: [String]) -> [ClosedRange<Date>] {
        let events = all
        return hosts.compactMap { host in
            guard let start = events.first(where: { $0.host == host && ($0.message.contains(": stopping ") || $0.message.contains(": moving leadership from ")) }),
                  let end = events.first(where: { $0.host == host && $0.step == "health" && $0.at >= start.at }) else { return nil }
            return start.at...end.at
        }
    }
}
