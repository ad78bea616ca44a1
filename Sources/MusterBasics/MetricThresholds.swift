/// Where each metric check draws its lines, and why there. The one table `verify`'s checks
/// (MusterEtcd) and the rendered alert rules (MusterPlan, `prometheus/etcd-alerts.yml`) both read.
///
/// Sources: etcd's FAQ and hardware guide (etcd.io/docs/v3.5/faq, op-guide/hardware: a disk is
/// fast enough when the p99 of WAL fsync stays under 10 ms and of backend commit under 25 ms),
/// and etcd's monitoring mixin (etcd-io/etcd contrib/mixin/alerts/alerts.libsonnet: the alerts
/// etcdHighFsyncDurations, etcdHighCommitDurations, etcdDatabaseQuotaLowSpace,
/// etcdDatabaseHighFragmentationRatio, etcdHighNumberOfLeaderChanges,
/// etcdHighNumberOfFailedProposals, etcdMemberCommunicationSlow).
public struct MetricThreshold: Sendable, Equatable {
    /// The check's name in `verify`.
    public var check: String
    /// The etcd metric it reads.
    public var metric: String
    /// Above this: a warning (nil: never).
    public var warn: Double?
    /// Above this: a failure (nil: never).
    public var fail: Double?
    /// Where the numbers come from.
    public var source: String
}

public enum MetricThresholds {
    public static let walFsync = MetricThreshold(
        check: "disk-wal-fsync", metric: "etcd_disk_wal_fsync_duration_seconds", warn: 0.010, fail: 0.5,
        source: "warn: etcd FAQ/hardware guide, p99 under 10 ms; fail: mixin etcdHighFsyncDurations (warning at 0.5 s, critical at 1 s)")
    public static let backendCommit = MetricThreshold(
        check: "disk-backend-commit", metric: "etcd_disk_backend_commit_duration_seconds", warn: 0.025, fail: 0.25,
        source: "warn: etcd FAQ/hardware guide, p99 under 25 ms; fail: mixin etcdHighCommitDurations (0.25 s)")
    /// Fractions of `etcd_server_quota_backend_bytes`.
    public static let quota = MetricThreshold(
        check: "db-quota", metric: "etcd_mvcc_db_total_size_in_bytes", warn: 0.80, fail: 0.95,
        source: "fail: mixin etcdDatabaseQuotaLowSpace (95%); warn: 80%, room left to compact and defragment before etcd raises NOSPACE and refuses writes")
    /// Warns when the part in use falls under `fragmentationInUse` of a database over
    /// `fragmentationFloorBytes`.
    public static let fragmentation = MetricThreshold(
        check: "db-fragmentation", metric: "etcd_mvcc_db_total_size_in_use_in_bytes", warn: 0.5, fail: nil,
        source: "mixin etcdDatabaseHighFragmentationRatio (in use under 50%, 100 MiB floor; the mixin puts the floor on the part in use, muster on the whole database, which is what defragmenting gives back)")
    public static let fragmentationFloorBytes: Double = 100 * 1024 * 1024
    /// Leader changes seen while verify watched.
    public static let leaderChanges = MetricThreshold(
        check: "leader-changes", metric: "etcd_server_leader_changes_seen_total", warn: 0, fail: nil,
        source: "mixin etcdHighNumberOfLeaderChanges (4 in 15 minutes); a window of seconds that sees one has seen an election under way")
    /// Failed proposals per second.
    public static let proposalsFailed = MetricThreshold(
        check: "proposals-failed", metric: "etcd_server_proposals_failed_total", warn: 5, fail: nil,
        source: "mixin etcdHighNumberOfFailedProposals (rate above 5 per second)")
    public static let peerRoundTrip = MetricThreshold(
        check: "peer-round-trip", metric: "etcd_network_peer_round_trip_time_seconds", warn: 0.15, fail: nil,
        source: "mixin etcdMemberCommunicationSlow (p99 above 0.15 s)")

    public static let all = [walFsync, backendCommit, quota, fragmentation, leaderChanges, proposalsFailed, peerRoundTrip]

    // Host checks: measured over muster's SSH sessions, not read from etcd's metrics.

    /// Preflight of a member's first start: the p99, in seconds, of single 2300-byte writes each
    /// made durable (O_DSYNC) on its data dir's filesystem.
    public static let diskPreflight = MetricThreshold(
        check: "disk-fdatasync", metric: "fdatasync of 2300-byte writes (etcd's WAL entries), measured by up's preflight", warn: 0.010, fail: 0.100,
        source: "warn: etcd FAQ/hardware guide, WAL fsync p99 under 10 ms; refuse: 100 ms, ten times that, where etcd's heartbeats (100 ms) are missed on every slow write")
    /// Seconds between a host's clock and the controller's.
    public static let clockSkew = MetricThreshold(
        check: "clock-skew", metric: "host clock minus the controller's (date +%s.%N over SSH)", warn: 0.5, fail: 1.0,
        source: "fail: etcd's peer prober logs clock drift above 1 s (rafthttp probing); warn: half of that")
    /// Free space on a member's data dir's filesystem over the cluster's quota-backend-bytes:
    /// warns under 1 (the database could not grow to its quota there).
    public static let diskFree = MetricThreshold(
        check: "disk-free", metric: "free bytes on the data dir's filesystem (df) over quota-backend-bytes", warn: 1.0, fail: nil,
        source: "etcd's quota-backend-bytes (default 2 GiB): the database may grow to it, and a full disk stops etcd where NOSPACE would have warned first")

    public static let hostChecks = [diskPreflight, clockSkew, diskFree]
}
