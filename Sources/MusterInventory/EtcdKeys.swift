/// etcd configuration-file keys (etcd 3.4 and 3.5 `embed.Config` YAML names).
enum EtcdKeys {
    /// Keys muster derives from the inventory; setting them by hand would contradict the plan.
    static let managedByMuster: Set<String> = [
        "name", "data-dir", "listen-peer-urls", "listen-client-urls", "initial-advertise-peer-urls",
        "advertise-client-urls", "initial-cluster", "initial-cluster-token", "initial-cluster-state",
        "discovery", "discovery-srv", "discovery-srv-name", "discovery-proxy", "discovery-fallback",
        "enable-grpc-gateway", "client-transport-security", "peer-transport-security",
    ]

    /// Keys that lose data or drop a check when set in a member's config, with why; refused
    /// unless the operator passes `--allow-unsafe-etcd-keys`.
    static let unsafe: [String: String] = [
        "force-new-cluster": "it makes the member a cluster of one at every start, dropping the others (a recovery step for one run, never a setting)",
        "unsafe-no-fsync": "etcd skips fsync, so a power loss loses writes it acknowledged",
        "experimental-peer-skip-client-san-verification": "peers' certificates are then accepted for any address",
    ]

    static let known: Set<String> = [
        "wal-dir", "snapshot-count", "heartbeat-interval", "election-timeout",
        "initial-election-tick-advance", "quota-backend-bytes", "backend-batch-limit", "backend-bbolt-freelist-type",
        "backend-batch-interval", "max-txn-ops", "max-request-bytes", "max-snapshots", "max-wals",
        "cors", "strict-reconfig-check", "enable-v2", "enable-pprof", "debug", "logger",
        "log-outputs", "log-level", "log-package-levels", "auto-compaction-mode",
        "auto-compaction-retention", "force-new-cluster", "grpc-keepalive-min-time",
        "grpc-keepalive-interval", "grpc-keepalive-timeout", "listen-metrics-urls", "metrics",
        "auth-token", "bcrypt-cost", "self-signed-cert-validity", "cipher-suites", "host-whitelist",
        "pre-vote", "unsafe-no-fsync", "socket-reuse-port", "socket-reuse-address",
        "max-concurrent-streams", "v2-deprecation", "enable-log-rotation", "log-rotation-config-json",
        "experimental-initial-corrupt-check", "experimental-corrupt-check-time",
        "experimental-enable-v2v3", "experimental-backend-bbolt-freelist-type",
        "experimental-enable-lease-checkpoint", "experimental-compaction-batch-limit",
        "experimental-peer-skip-client-san-verification", "experimental-watch-progress-notify-interval",
        "experimental-warning-apply-duration", "experimental-memory-mlock",
        "experimental-txn-mode-write-with-shared-buffer", "experimental-bootstrap-defrag-threshold-megabytes",
        "experimental-snapshot-catchup-entries", "experimental-enable-distributed-tracing",
        "proxy", "proxy-failure-wait", "proxy-refresh-interval", "proxy-dial-timeout",
        "proxy-write-timeout", "proxy-read-timeout",
    ]
}
