import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterPKI
import MusterPlan
import MusterWorkspace

/// `muster verify`'s production checks on real members (etcd 3.5.16): certificates' days left,
/// and what the members' own metrics say.
@Suite struct ProductionCheckTests {
    private func verify(_ builder: PlanBuilder, viaSSH: Bool = false, sample: Duration = .milliseconds(500)) async throws -> VerificationReport {
        let reports = try await Verification.run(workspace: try builder.build(), options: DeploySandbox.options,
                                                 viaSSH: viaSSH, sample: sample, progress: Progress(quiet: true))
        return try #require(reports.first)
    }

    /// Replaces a member's server certificate and key on its host with ones from the cluster CA
    /// that end in `days` (etcd reads them again at each handshake).
    private func presentShort(_ member: MemberPlan, pki: String, days: Int) throws {
        let authority = try CertificateAuthority(directory: pki, commonName: "muster CA for main")
        let issued = try authority.issue(kind: .server, commonName: member.name, dnsNames: ["localhost"],
                                         ipAddresses: [member.address, "127.0.0.1"], validityDays: days)
        for (path, text) in [(member.paths.serverKey, issued.privateKeyPEM), (member.paths.serverCert, issued.certificatePEM)] {
            _ = try DeploySandbox.exec(member.host, "cat > \(Shell.quote(path)) <<'PEM'\n\(text)PEM")
        }
    }

    @Test func certificatesNearTheirEndWarnThenFail() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let workspace = try builder.build()
            let pki = workspace.state.directory + "/pki/main"

            // Freshly issued: every certificate has years left; the three presented ones are counted.
            let healthy = try await verify(builder)
            let fresh = try #require(healthy.check(named: "cert-expiry"))
            #expect(fresh.ok && healthy.ok && healthy.exitCode == 0, "\(healthy.table())")
            #expect(fresh.detail.contains("the soonest"), "\(fresh.detail)")
            for name in ["db-quota", "db-fragmentation", "proposals-failed", "leader-changes"] {
                #expect(healthy.check(named: name)?.ok == true, "\(healthy.table())")
            }
            // Through SSH tunnels too: the handshake and /metrics reach each member on its loopback.
            let tunnelled = try await verify(builder, viaSSH: true)
            #expect(tunnelled.check(named: "cert-expiry")?.ok == true && tunnelled.check(named: "db-quota")?.ok == true,
                    "\(tunnelled.table())")

            // host1 presents a certificate with 20 days left: a warning naming it, exit code 0
            // unless strict. (The state's copy still has years: only the handshake sees it.)
            let host1 = try #require(workspace.plan.clusters[0].members.first { $0.name == "host1" })
            try presentShort(host1, pki: pki, days: 20)
            var warned = try await verify(builder)
            let warning = try #require(warned.check(named: "cert-expiry"))
            #expect(warning.warned, "\(warned.table())")
            #expect(warning.detail.contains("host1 presents") && warning.detail.contains("ends in 19 days"), "\(warning.detail)")
            #expect(!warning.detail.contains("host2") && !warning.detail.contains("pki/main/"), "\(warning.detail)")
            #expect(warned.ok && warned.exitCode == 0)
            #expect(warned.table().contains("WARN  cert-expiry"))
            warned.strict = true
            #expect(warned.exitCode == 1)
            // The command: exit 0 with the warning shown, 1 with --strict.
            let command = try MusterCLI.run(["verify", builder.inventoryPath, "--sample", "200ms"])
            #expect(command.status == 0 && command.stdoutText.contains("WARN  cert-expiry"), "\(command.stdoutText)\(command.stderrText)")
            let strict = try MusterCLI.run(["verify", builder.inventoryPath, "--sample", "200ms", "--strict", "--output", "json"])
            #expect(strict.status == 1 && strict.stdoutText.contains("\"severity\": \"warn\""), "\(strict.stdoutText)\(strict.stderrText)")

            // A named client certificate in the state with 5 days left: a failure naming the file.
            let authority = try CertificateAuthority(directory: pki, commonName: "muster CA for main")
            let client = try authority.issue(kind: .client, commonName: "prometheus", dnsNames: [], ipAddresses: [], validityDays: 5)
            try Data(client.certificatePEM.utf8).write(to: URL(fileURLWithPath: pki + "/client-prometheus.crt"))
            let failed = try await verify(builder)
            let failure = try #require(failed.check(named: "cert-expiry"))
            #expect(failure.failed && failure.detail.contains("pki/main/client-prometheus.crt ends in 4 days"), "\(failure.detail)")
            #expect(!failed.ok && failed.exitCode == 1)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Each member's share of its database in use.
    private func inUseShares(_ builder: PlanBuilder) async throws -> [Double] {
        var shares: [Double] = []
        for member in try builder.build().plan.clusters[0].members {
            let sample = MetricSample(parsing: try await EtcdClient(baseURL: member.endpoint).metrics())
            let size = try #require(sample.value("etcd_mvcc_db_total_size_in_bytes"))
            shares.append(try #require(sample.value("etcd_mvcc_db_total_size_in_use_in_bytes")) / size)
        }
        return shares
    }

    /// The largest share of its quota any member's database uses, from the members' metrics.
    private func quotaShare(_ builder: PlanBuilder) async throws -> Double {
        var share = 0.0
        for member in try builder.build().plan.clusters[0].members {
            let sample = MetricSample(parsing: try await EtcdClient(baseURL: member.endpoint).metrics())
            let size = try #require(sample.value("etcd_mvcc_db_total_size_in_bytes"))
            let quota = try #require(sample.value("etcd_server_quota_backend_bytes"))
            share = max(share, size / quota)
        }
        return share
    }

    @Test func databaseNearItsQuotaWarnsThenFails() async throws {
        try await onSandbox {
            let quota = 8 * 1024 * 1024
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: false\n    etcd: { quota-backend-bytes: \(quota) }\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let healthy = try await verify(builder)
            #expect(healthy.check(named: "db-quota")?.ok == true, "\(healthy.table())")
            // disk-free judges the hosts' free space against the inventory's quota, not etcd's default.
            let hosts = try await verify(builder, viaSSH: true)
            let space = try #require(hosts.check(named: "disk-free"), "\(hosts.table())")
            #expect(space.ok && space.detail.contains("quota-backend-bytes 8.4 MB"), "\(space.detail)")
            let client = EtcdClient(baseURL: try builder.build().plan.clusters[0].members[0].endpoint, timeout: 10)
            let value = String(repeating: "x", count: 48 * 1024)

            // Fill one 48 KiB value at a time (about 0.6% of the quota), until past the line,
            // bounded. The size metric can lag the writes on a busy machine: past 95% a put may
            // meet the quota itself, which is past the line too (etcd refuses with NOSPACE).
            var written = 0
            func fill(past share: Double) async throws {
                while try await quotaShare(builder) <= share {
                    try #require(written < 800, "the database never passed \(share) of its quota")
                    do {
                        _ = try await client.put("/fill/\(written)", value)
                    } catch {
                        let message = "\(error)"
                        guard share >= 0.95, message.contains("database space exceeded") else { throw error }
                        return
                    }
                    written += 1
                }
            }
            try await fill(past: 0.80)
            let warned = try await verify(builder)
            let warning = try #require(warned.check(named: "db-quota"))
            #expect(warning.warned && warning.detail.contains("host1") && warning.detail.contains("of 8.4 MB"), "\(warning.detail)")
            #expect(warned.exitCode == 0, "\(warned.table())")

            try await fill(past: 0.95)
            let failed = try await verify(builder)
            let failure = try #require(failed.check(named: "db-quota"))
            #expect(failure.failed, "\(failure.detail)")
            #expect(failed.exitCode == 1)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}

extension ProductionCheckTests {
    /// One key written over and over (every old value kept until compaction), then compacted:
    /// the database keeps its size, and little of it is in use.
    @Test func fragmentedDatabaseWarns() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let client = EtcdClient(baseURL: try builder.build().plan.clusters[0].members[0].endpoint, timeout: 30)
            let value = String(repeating: "f", count: 1_000_000)
            var revision: Int64 = 0
            // 110 MB of old values: over the 100 MiB floor.
            for _ in 0..<110 { revision = try await client.put("/fragment", value).header.revision }
            let full = try await verify(builder)
            #expect(full.check(named: "db-fragmentation")?.ok == true, "\(full.table())")

            try await client.compact(revision: revision)
            // Each member compacts on its own, and bbolt counts the pages freed only at a later
            // commit: write (as a live cluster does) and wait, bounded, until every member says so.
            let deadline = ContinuousClock.now + .seconds(30)
            var shares = try await inUseShares(builder)
            while shares.contains(where: { $0 >= 0.5 }) {
                try #require(ContinuousClock.now < deadline, "the members' databases never showed their freed pages: \(shares)")
                try await client.put("/traffic", "after compaction")
                try await Task.sleep(for: .milliseconds(200))
                shares = try await inUseShares(builder)
            }
            let fragmented = try await verify(builder)
            let warning = try #require(fragmented.check(named: "db-fragmentation"))
            #expect(warning.warned, "\(fragmented.table())")
            for name in ["host1", "host2", "host3"] { #expect(warning.detail.contains(name), "\(warning.detail)") }
            #expect(warning.detail.contains("muster defrag"))
            #expect(fragmented.exitCode == 0)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}

extension ProductionCheckTests {
    /// Network namespaces share the machine's one clock, so a host's clock is set off where the
    /// check reads it: a `date` in /usr/local/bin of that host's own root (first on root's PATH,
    /// which muster's `date +%s.%N` goes through) that adds `seconds`.
    private func setClock(of host: String, ahead seconds: Double) throws {
        _ = try DeploySandbox.exec(host, """
            cat > /usr/local/bin/date <<'SH'
            #!/bin/sh
            t=$(/bin/date +%s.%N)
            awk -v t="$t" 'BEGIN { printf "%.9f\\n", t + \(seconds) }'
            SH
            chmod 755 /usr/local/bin/date
            """)
    }

    @Test func clockSkewNamesTheHostOff() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            defer { _ = try? DeploySandbox.exec("host2", "rm -f /usr/local/bin/date") }

            let agreed = try await verify(builder, viaSSH: true)
            let fine = try #require(agreed.check(named: "clock-skew"), "\(agreed.table())")
            #expect(fine.ok && fine.detail.contains("host1") && fine.detail.contains("host3"), "\(fine.detail)")
            // Hosts with gigabytes free under the default 2 GiB quota.
            #expect(agreed.check(named: "disk-free")?.ok == true, "\(agreed.table())")
            // Without SSH sessions nothing is asked of the hosts.
            #expect(try await verify(builder).check(named: "clock-skew") == nil)

            try setClock(of: "host2", ahead: 0.8)
            let ahead = try await verify(builder, viaSSH: true)
            let warning = try #require(ahead.check(named: "clock-skew"))
            #expect(warning.warned && warning.detail.contains("host2 +0."), "\(warning.detail)")
            #expect(ahead.exitCode == 0)

            try setClock(of: "host2", ahead: -3)
            let behind = try await verify(builder, viaSSH: true)
            let failure = try #require(behind.check(named: "clock-skew"))
            #expect(failure.failed && (failure.detail.contains("host2 -3.0") || failure.detail.contains("host2 -2.99")), "\(failure.detail)")
            #expect(behind.exitCode == 1)
            _ = try DeploySandbox.exec("host2", "rm -f /usr/local/bin/date")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// `up`'s preflight measures the same clocks as verify and warns, changing nothing else.
    @Test func upWarnsOfAHostsSkewedClock() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            defer { _ = try? DeploySandbox.exec("host2", "rm -f /usr/local/bin/date") }
            let agreed = try MusterCLI.run(["up", builder.inventoryPath, "--dry-run"])
            #expect(agreed.status == 0 && !agreed.stderrText.contains("clock-skew"), "\(agreed.stderrText)")

            try setClock(of: "host2", ahead: 0.8)
            let ahead = try MusterCLI.run(["up", builder.inventoryPath, "--dry-run"])
            let warning = try #require(ahead.stderrText.split(separator: "\n").first { $0.contains("WARN clock-skew: ") }, "\(ahead.stderrText)")
            #expect(warning.contains("host2 +0.") && warning.contains("warn beyond 0.5 s, fail beyond 1.0 s"), "\(warning)")
            #expect(ahead.status == 0 && ahead.stderrText.contains("dry run: preflight passed"), "\(ahead.stderrText)")

            // Beyond etcd's own 1 s: still a warning in up (etcd runs), the figure named.
            try setClock(of: "host2", ahead: -3)
            let behind = try MusterCLI.run(["up", builder.inventoryPath, "--dry-run"])
            let far = try #require(behind.stderrText.split(separator: "\n").first { $0.contains("WARN clock-skew: ") }, "\(behind.stderrText)")
            #expect(far.contains("host2 -3.0") || far.contains("host2 -2.99"), "\(far)")
            #expect(behind.status == 0, "\(behind.stderrText)")
        }
    }

    /// A member's peer port presents a certificate of its own (signed by the peer CA): read in
    /// its handshake, directly and through SSH tunnels (etcd 3.4.23 and 3.5.16).
    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func aPeerCertificateNearItsEndWarns(binary: String) async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: binary) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let workspace = try builder.build()
            let pki = workspace.state.directory + "/pki/main"
            let fresh = try await verify(builder)
            #expect(fresh.check(named: "cert-expiry")?.ok == true, "\(fresh.table())")

            let host3 = try #require(workspace.plan.clusters[0].members.first { $0.name == "host3" })
            let peerCA = try CertificateAuthority(directory: pki, commonName: "muster peer CA for main", baseName: "peer-ca")
            let issued = try peerCA.issue(kind: .peer, commonName: host3.name, dnsNames: ["localhost"],
                                          ipAddresses: [host3.address, "127.0.0.1"], validityDays: 20)
            for (path, text) in [(host3.paths.peerKey, issued.privateKeyPEM), (host3.paths.peerCert, issued.certificatePEM)] {
                _ = try DeploySandbox.exec(host3.host, "cat > \(Shell.quote(path)) <<'PEM'\n\(text)PEM")
            }
            for viaSSH in [false, true] {
                let warned = try await verify(builder, viaSSH: viaSSH)
                let warning = try #require(warned.check(named: "cert-expiry"))
                #expect(warning.warned, "\(warned.table())")
                #expect(warning.detail.contains("host3 presents at its peer URL \(host3.peerURL)") && warning.detail.contains("ends in 19 days"), "\(warning.detail)")
                // Its client port and the state's copy still have years.
                #expect(!warning.detail.contains("host3 presents at https") && !warning.detail.contains("pki/main/"), "\(warning.detail)")
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
