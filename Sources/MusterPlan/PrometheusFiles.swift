import MusterBasics

/// What Prometheus needs to watch the planned clusters: a scrape config (one job per cluster,
/// every member's client URL) and alert rules (etcd's mixin's alerts, at `MetricThresholds`'
/// lines, so that they and `muster verify` agree). Written by `render` under `prometheus/`.
public enum PrometheusFiles {
    public static let scrapePath = "prometheus/etcd-scrape.yml"
    public static let alertsPath = "prometheus/etcd-alerts.yml"
    /// The client certificate Prometheus presents to a TLS cluster: `client-prometheus.crt` and
    /// `.key` in the cluster's PKI directory (`muster client-cert INVENTORY --cluster C --name prometheus`).
    public static let clientName = "prometheus"

    /// `job` label of a cluster's members.
    public static func job(_ cluster: String) -> String { "etcd-" + cluster }

    /// `pkiDirectory(cluster)`: the absolute `STATE/pki/CLUSTER` the certificates' paths are in.
    public static func scrapeConfig(_ clusters: [ClusterPlan], pkiDirectory: (String) -> String) -> String {
        var lines = ["# Rendered by muster: one job per cluster, each member's client URL.",
                     "# Include under scrape_configs, or run Prometheus with this file as its configuration.",
                     "scrape_configs:"]
        for cluster in clusters {
            lines.append("  - job_name: \(quoted(job(cluster.name)))")
            // etcd's mixin is written for a 30 s scrape interval; its rate windows are 5 minutes.
            lines.append("    scrape_interval: 15s")
            lines.append("    scheme: \(cluster.tls ? "https" : "http")")
            if cluster.tls {
                let directory = pkiDirectory(cluster.name)
                lines += ["    tls_config:",
                          "      ca_file: \(quoted(directory + "/ca.crt"))",
                          "      cert_file: \(quoted(directory + "/client-\(clientName).crt"))",
                          "      key_file: \(quoted(directory + "/client-\(clientName).key"))"]
            }
            // A member serving clients on its own loopback only cannot be reached from here.
            let reachable = cluster.members.filter { member in
                member.clientURLs.first.map { !["127.0.0.1", "localhost", "::1"].contains(URLParts.host(of: $0)) } ?? false
            }
            lines.append("    static_configs:")
            lines.append("      - targets:" + (reachable.isEmpty ? " []" : ""))
            for member in cluster.members where !reachable.contains(where: { $0.name == member.name }) {
                lines.append("          # \(member.name) serves clients on its loopback only: not scraped")
            }
            for member in reachable {
                lines.append("          - \(quoted(hostPort(member.clientURLs[0])))")
            }
            lines += ["        labels:", "          cluster: \(quoted(cluster.name))"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One alert rule: its name, PromQL, how long it must hold, severity.
    /// `summary` uses labels only (a value in it would make every firing a new annotation, and
    /// Prometheus shows the value beside the alert anyway); `source` becomes a comment above it.
    struct Alert {
        var name: String
        var expression: String
        var holds: String
        var severity: String
        var summary: String
        var source: String
    }

    public static func alertRules(_ clusters: [ClusterPlan]) -> String {
        let jobs = clusters.map { regexEscaped(job($0.name)) }.joined(separator: "|")
        let selector = "job=~\"\(jobs)\""
        let t = MetricThresholds.self
        func p99(_ metric: String) -> String {
            "histogram_quantile(0.99, rate(\(metric)_bucket{\(selector)}[5m]))"
        }
        let alerts = [
            Alert(name: "etcdNoLeader", expression: "etcd_server_has_leader{\(selector)} == 0", holds: "1m",
                  severity: "critical", summary: "etcd member {{ $labels.instance }} has no leader.", source: "mixin etcdNoLeader"),
            Alert(name: "etcdInsufficientMembers",
                  expression: "sum without (instance) (up{\(selector)} == bool 1) < ((count without (instance) (up{\(selector)}) + 1) / 2)",
                  holds: "3m", severity: "critical", summary: "etcd cluster {{ $labels.cluster }} has too few members up for a quorum.", source: "mixin etcdInsufficientMembers"),
            Alert(name: "etcdHighFsyncDurations", expression: "\(p99(t.walFsync.metric)) > \(t.walFsync.warn!)", holds: "10m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: WAL fsync p99 too slow for etcd.", source: t.walFsync.source),
            Alert(name: "etcdHighFsyncDurations", expression: "\(p99(t.walFsync.metric)) > \(t.walFsync.fail!)", holds: "10m",
                  severity: "critical", summary: "etcd {{ $labels.instance }}: WAL fsync p99 too slow for etcd.", source: t.walFsync.source),
            Alert(name: "etcdHighCommitDurations", expression: "\(p99(t.backendCommit.metric)) > \(t.backendCommit.warn!)", holds: "10m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: backend commit p99 too slow for etcd.", source: t.backendCommit.source),
            Alert(name: "etcdHighCommitDurations", expression: "\(p99(t.backendCommit.metric)) > \(t.backendCommit.fail!)", holds: "10m",
                  severity: "critical", summary: "etcd {{ $labels.instance }}: backend commit p99 too slow for etcd.", source: t.backendCommit.source),
            Alert(name: "etcdDatabaseQuotaLowSpace",
                  expression: "\(t.quota.metric){\(selector)} / etcd_server_quota_backend_bytes{\(selector)} > \(t.quota.warn!)", holds: "10m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: database nearing its quota.", source: t.quota.source),
            Alert(name: "etcdDatabaseQuotaLowSpace",
                  expression: "\(t.quota.metric){\(selector)} / etcd_server_quota_backend_bytes{\(selector)} > \(t.quota.fail!)", holds: "10m",
                  severity: "critical", summary: "etcd {{ $labels.instance }}: database nearly at its quota; etcd refuses writes at 100%.", source: t.quota.source),
            Alert(name: "etcdDatabaseHighFragmentationRatio",
                  expression: "(\(t.fragmentation.metric){\(selector)} / etcd_mvcc_db_total_size_in_bytes{\(selector)}) < \(t.fragmentation.warn!) and etcd_mvcc_db_total_size_in_bytes{\(selector)} > \(Int(MetricThresholds.fragmentationFloorBytes))",
                  holds: "10m", severity: "warning",
                  summary: "etcd {{ $labels.instance }}: under half its database in use; `muster defrag` gives the rest back.", source: t.fragmentation.source),
            Alert(name: "etcdHighNumberOfLeaderChanges",
                  expression: "increase(\(t.leaderChanges.metric){\(selector)}[15m]) >= 4", holds: "5m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: 4 or more leader changes in 15 minutes.", source: t.leaderChanges.source),
            Alert(name: "etcdHighNumberOfFailedProposals",
                  expression: "rate(\(t.proposalsFailed.metric){\(selector)}[15m]) > \(t.proposalsFailed.warn!)", holds: "15m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: many failed proposals.", source: t.proposalsFailed.source),
            Alert(name: "etcdMemberCommunicationSlow", expression: "\(p99(t.peerRoundTrip.metric)) > \(t.peerRoundTrip.warn!)", holds: "10m",
                  severity: "warning", summary: "etcd {{ $labels.instance }}: slow round trip to peer {{ $labels.To }}.", source: t.peerRoundTrip.source),
        ]
        var lines = ["# Rendered by muster: etcd's monitoring mixin's alerts (etcd-io/etcd contrib/mixin) for",
                     "# the jobs of \(PrometheusFiles.scrapePath), at the lines `muster verify` checks.",
                     "groups:", "  - name: etcd", "    rules:"]
        for alert in alerts {
            lines += ["      # \(alert.source)",
                      "      - alert: \(alert.name)",
                      "        expr: \(quoted(alert.expression))",
                      "        for: \(alert.holds)",
                      "        labels:",
                      "          severity: \(alert.severity)",
                      "        annotations:",
                      "          summary: \(quoted(alert.summary))"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `HOST:PORT` of a URL (an IPv6 literal keeps its brackets).
    static func hostPort(_ url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        return String(rest)
    }

    /// A YAML double-quoted scalar (JSON's escapes, which YAML reads the same).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A job name as a literal in a PromQL regex.
    static func regexEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            if "\\.+*?()|[]{}^$".contains(character) { out += "\\\\" }
            out.append(character)
        }
        return out
    }
}
