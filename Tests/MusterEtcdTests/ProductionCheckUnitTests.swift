import Foundation
import MusterBasics
import Testing
@testable import MusterEtcd

/// Severities, the metric checks' arithmetic and the certificate thresholds, on values whose
/// answers are worked out by hand.
@Suite struct ProductionCheckUnitTests {
    /// A report whose one check warned: exit 0, unless strict; the table says WARN; JSON says
    /// the severity; failures come before warnings.
    @Test func warningsCountOnlyWhenStrict() throws {
        var report = VerificationReport(clusterName: "main", expectedClusterID: 0)
        report.checks = [.init(name: "one-leader", ok: true, detail: "fine"),
                         .init(name: "db-quota", ok: false, severity: .warn, detail: "host1 at 85%")]
        #expect(report.ok && report.exitCode == 0)
        #expect(report.table().contains("WARN  db-quota: host1 at 85%"))
        #expect(report.table().contains("0 of 2 checks failed, 1 warned"))
        #expect(report.orderedChecks.map(\.name) == ["db-quota", "one-leader"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        let checks = try #require(json["checks"] as? [[String: Any]])
        #expect(checks.map { $0["severity"] as? String } == ["warn", "fail"])
        #expect(json["ok"] as? Bool == true)

        report.strict = true
        #expect(!report.ok && report.exitCode == 1)
        #expect(report.failedChecks.map(\.name) == ["db-quota"])

        report.strict = false
        report.checks.append(.init(name: "raft-term", ok: false, detail: "terms differ"))
        #expect(!report.ok && report.exitCode == 1)
        #expect(report.orderedChecks.map(\.verdict) == ["FAIL", "WARN", "PASS"])
        try JSONShape.validate(report.json())
    }

    /// etcd 3.5.16's own lines (read from a member), comments and all.
    static let exposition = """
        # HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
        # TYPE etcd_disk_wal_fsync_duration_seconds histogram
        etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 3
        etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 3
        etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"} 3
        etcd_disk_wal_fsync_duration_seconds_bucket{le="0.008"} 5
        etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 5
        etcd_disk_wal_fsync_duration_seconds_sum 0.012472160999999999
        etcd_disk_wal_fsync_duration_seconds_count 5
        etcd_mvcc_db_total_size_in_bytes 20480
        etcd_server_quota_backend_bytes 8.388608e+06
        etcd_network_peer_round_trip_time_seconds_bucket{To="2a1e9bd5a8f3c4d0",le="0.0001"} 0
        etcd_network_peer_round_trip_time_seconds_bucket{To="2a1e9bd5a8f3c4d0",le="+Inf"} 4

        """

    @Test func parsesEtcdsExposition() throws {
        let sample = MetricSample(parsing: ProductionCheckUnitTests.exposition)
        #expect(sample.value("etcd_server_quota_backend_bytes") == 8_388_608)
        #expect(sample.value("etcd_mvcc_db_total_size_in_bytes") == 20480)
        let wal = try #require(sample.histograms("etcd_disk_wal_fsync_duration_seconds")[[:]])
        #expect(wal.map(\.upperBound) == [0.001, 0.002, 0.004, 0.008, .infinity])
        #expect(wal.map(\.count) == [3, 3, 3, 5, 5])
        #expect(sample.histograms("etcd_network_peer_round_trip_time_seconds").keys.map { $0["To"] } == ["2a1e9bd5a8f3c4d0"])
    }

    /// p99 from the window's deltas, interpolated as Prometheus does: before 100 fsyncs under
    /// 1 ms; in the window 100 more, 90 under 1 ms, 10 between 8 and 16 ms: rank 99 falls in
    /// (8 ms, 16 ms] as its 9th of 10, so 8 + 8 * 9/10 = 15.2 ms. The lifetime histogram would say
    /// under 16 ms too, but its p99 would be 8.4 ms: the window is what sees the slow disk.
    @Test func windowedQuantile() throws {
        let before: [(upperBound: Double, count: Double)] = [(0.001, 100), (0.008, 100), (0.016, 100), (.infinity, 100)]
        let after: [(upperBound: Double, count: Double)] = [(0.001, 190), (0.008, 190), (0.016, 200), (.infinity, 200)]
        let window = HistogramWindow(from: before, to: after)
        #expect(window.count == 100)
        let p99 = try #require(window.quantile(0.99))
        #expect(abs(p99 - 0.0152) < 1e-9)
        // No observation in the window: no data, whatever the lifetime says.
        #expect(HistogramWindow(from: after, to: after).quantile(0.99) == nil)
        // A rank in +Inf: the highest finite bound.
        #expect(HistogramWindow(buckets: [(0.001, 0), (0.5, 0), (.infinity, 3)]).quantile(0.99) == 0.5)
    }

    private func member(_ name: String, _ first: String, _ second: String) -> MemberMetrics {
        MemberMetrics(name: name, first: .success(MetricSample(parsing: first)), second: .success(MetricSample(parsing: second)),
                      window: .seconds(2))
    }

    private func fsync(_ fast: Int, _ slow: Int, slowBound: String) -> String {
        """
        etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"} \(fast)
        etcd_disk_wal_fsync_duration_seconds_bucket{le="\(slowBound)"} \(fast + slow)
        etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} \(fast + slow)
        """
    }

    @Test func fsyncLevelsNameEachMember() throws {
        let checks = MetricChecks(members: [
            member("host1", fsync(0, 0, slowBound: "0.016"), fsync(100, 0, slowBound: "0.016")),
            member("host2", fsync(0, 0, slowBound: "0.032"), fsync(0, 100, slowBound: "0.032")),
            member("host3", fsync(5, 0, slowBound: "0.016"), fsync(5, 0, slowBound: "0.016")),
        ])
        let check = checks.quantileCheck(MetricThresholds.walFsync, what: "fsyncs")
        #expect(!check.ok && check.severity == .warn, "\(check.detail)")
        #expect(check.detail.contains("host1 p99 4.0 ms"), "\(check.detail)")
        #expect(check.detail.contains("host2 p99 31.7 ms"), "\(check.detail)")
        #expect(check.detail.contains("host3 no data"), "\(check.detail)")

        let slow = MetricChecks(members: [member("host1", fsync(0, 0, slowBound: "1.024"), fsync(0, 10, slowBound: "1.024"))])
            .quantileCheck(MetricThresholds.walFsync, what: "fsyncs")
        #expect(!slow.ok && slow.severity == .fail, "\(slow.detail)")
    }

    @Test func quotaAndFragmentationLevels() {
        func sizes(_ size: Int, inUse: Int, quota: Int) -> MemberMetrics {
            let text = "etcd_mvcc_db_total_size_in_bytes \(size)\netcd_mvcc_db_total_size_in_use_in_bytes \(inUse)\netcd_server_quota_backend_bytes \(quota)\n"
            return member("host1", text, text)
        }
        let quota = 1000
        #expect(MetricChecks(members: [sizes(800, inUse: 800, quota: quota)]).quota().ok)
        let warned = MetricChecks(members: [sizes(801, inUse: 801, quota: quota)]).quota()
        #expect(warned.warned && warned.detail.contains("80.1%"), "\(warned.detail)")
        #expect(MetricChecks(members: [sizes(951, inUse: 951, quota: quota)]).quota().failed)

        let mib = 1024 * 1024
        // Under half in use, but a small database: nothing to gain.
        #expect(MetricChecks(members: [sizes(50 * mib, inUse: 10 * mib, quota: 2048 * mib)]).fragmentation().ok)
        let fragmented = MetricChecks(members: [sizes(120 * mib, inUse: 30 * mib, quota: 2048 * mib)]).fragmentation()
        #expect(fragmented.warned && fragmented.detail.contains("muster defrag"), "\(fragmented.detail)")
        #expect(MetricChecks(members: [sizes(120 * mib, inUse: 70 * mib, quota: 2048 * mib)]).fragmentation().ok)
    }

    @Test func countersOverTheWindow() {
        let changes = MetricChecks(members: [member("host1", "etcd_server_leader_changes_seen_total 1\n",
                                                    "etcd_server_leader_changes_seen_total 2\n")]).leaderChanges()
        #expect(changes.warned && changes.detail.contains("host1 1 in 2.0 s"), "\(changes.detail)")
        #expect(MetricChecks(members: [member("host1", "etcd_server_leader_changes_seen_total 3\n",
                                              "etcd_server_leader_changes_seen_total 3\n")]).leaderChanges().ok)
        let failing = MetricChecks(members: [member("host1", "etcd_server_proposals_failed_total 0\n",
                                                    "etcd_server_proposals_failed_total 20\n")]).proposalsFailed()
        #expect(failing.warned && failing.detail.contains("10.00/s"), "\(failing.detail)")
    }

    @Test func certificateThresholds() {
        let now = Date(timeIntervalSince1970: 2_000_000_000)
        func seen(_ days: Double) -> CertificateExpiry.Seen {
            .init(label: "pki/main/ca.crt", notAfter: now + days * 86400 + 60)
        }
        #expect(CertificateExpiry.check([seen(30)], unreadable: [], now: now).ok)
        let warned = CertificateExpiry.check([seen(29)], unreadable: [], now: now)
        #expect(warned.warned && warned.detail.contains("pki/main/ca.crt ends in 29 days"), "\(warned.detail)")
        #expect(CertificateExpiry.check([seen(7)], unreadable: [], now: now).warned)
        let failed = CertificateExpiry.check([seen(6)], unreadable: [], now: now)
        #expect(failed.failed && failed.detail.contains("6 days"))
        #expect(CertificateExpiry.check([seen(-3)], unreadable: [], now: now).detail.contains("expired"))
    }
}
