import Foundation
import Testing
import MusterBasics
import MusterPKI
import MusterTestSupport

/// `muster render`'s Prometheus files, judged by Debian's promtool (prometheus 2.42): the scrape
/// config and the rules load, and each alert fires on series that should fire it and stays quiet
/// on series that should not.
@Suite struct PrometheusRenderTests {
    static let inventory = """
        ssh: { user: root, identity: ~/.ssh/id_ed25519 }
        member: { binary: /usr/bin/etcd, version: 3.4.23 }
        hosts:
          etcd1: { address: 10.0.0.1 }
          etcd2: { address: 10.0.0.2 }
          etcd3: { address: 10.0.0.3 }
        clusters:
          main:
            members: [etcd1, etcd2, etcd3]
            tls: true
            bootstrap: static
          plain:
            members: [etcd2]
            tls: false
            bootstrap: static
            client_port: 3379
            peer_port: 3380

        """

    /// Renders the inventory above (or `inventory`); returns the tree and the state directory.
    private func render(_ inventory: String = PrometheusRenderTests.inventory) throws -> (tree: String, state: String) {
        let directory = try TemporaryDirectory.create(prefix: "muster-prometheus")
        try Data(inventory.utf8).write(to: URL(fileURLWithPath: directory + "/inventory.yml"))
        let run = try MusterCLI.run(["render", directory + "/inventory.yml", "--out", directory + "/tree", "--state", directory + "/state"])
        try #require(run.succeeded, "\(run.stderrText)")
        return (directory + "/tree", directory + "/state")
    }

    private func promtool(_ arguments: [String]) throws -> ProcessResult {
        try LocalProcess.run(["promtool"] + arguments, timeout: 60)
    }

    @Test func scrapeConfigAndRulesLoad() throws {
        let (tree, state) = try render()
        defer { try? FileManager.default.removeItem(atPath: (tree as NSString).deletingLastPathComponent) }
        let scrape = tree + "/prometheus/etcd-scrape.yml"
        let text = try String(contentsOfFile: scrape, encoding: .utf8)
        for target in ["\"10.0.0.1:2379\"", "\"10.0.0.2:2379\"", "\"10.0.0.3:2379\"", "\"10.0.0.2:3379\""] {
            #expect(text.contains(target), "\(text)")
        }
        #expect(text.contains("\(state)/pki/main/client-prometheus.crt"))

        // promtool reads the certificate files: none issued yet, the config is refused.
        let before = try promtool(["check", "config", scrape])
        #expect(!before.succeeded && before.stderrText.contains("client-prometheus.crt"), "\(before.stdoutText)\(before.stderrText)")

        let pki = ClusterPKI.directory(stateDirectory: state, cluster: "main")
        let authority = try ClusterPKI(stateDirectory: state, cluster: "main").authority
        let issued = try authority.issue(kind: .client, commonName: "prometheus", dnsNames: [], ipAddresses: [])
        try Data(issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: pki + "/client-prometheus.crt"))
        try Data(issued.privateKeyPEM.utf8).write(to: URL(fileURLWithPath: pki + "/client-prometheus.key"))
        let config = try promtool(["check", "config", scrape])
        #expect(config.succeeded, "\(config.stdoutText)\(config.stderrText)")

        let rules = try promtool(["check", "rules", tree + "/prometheus/etcd-alerts.yml"])
        #expect(rules.succeeded && rules.stdoutText.contains("SUCCESS: 12 rules found"), "\(rules.stdoutText)\(rules.stderrText)")
    }

    /// Members that serve clients on their own loopback only are no targets (every one would be
    /// 127.0.0.1 of the controller): a comment names each, and the config still loads.
    @Test func loopbackOnlyMembersAreNoTargets() throws {
        let (tree, _) = try render(PrometheusRenderTests.inventory.replacingOccurrences(
            of: "    tls: true\n", with: "    tls: false\n    client_listen: loopback\n"))
        defer { try? FileManager.default.removeItem(atPath: (tree as NSString).deletingLastPathComponent) }
        let scrape = tree + "/prometheus/etcd-scrape.yml"
        let text = try String(contentsOfFile: scrape, encoding: .utf8)
        #expect(!text.contains("127.0.0.1") && text.contains("- targets: []"), "\(text)")
        #expect(text.contains("# etcd1 serves clients on its loopback only: not scraped"), "\(text)")
        #expect(text.contains("\"10.0.0.2:3379\""), "\(text)")
        let config = try promtool(["check", "config", scrape])
        #expect(config.succeeded, "\(config.stdoutText)\(config.stderrText)")
    }

    /// One instance's histogram: `perMinute` observations a minute, all in the bucket ending at
    /// `bound` (bounds 1 ms, 32 ms, 1.024 s, +Inf).
    private func histogram(_ metric: String, _ labels: String, bound: String, perMinute: Int = 10) -> [String] {
        ["0.001", "0.032", "1.024", "+Inf"].map { le -> String in
            let reached = ["0.001", "0.032", "1.024", "+Inf"].firstIndex(of: le)! >= ["0.001", "0.032", "1.024", "+Inf"].firstIndex(of: bound)!
            return "      - series: '\(metric)_bucket{\(labels),le=\"\(le)\"}'\n        values: '0+\(reached ? perMinute : 0)x40'"
        }
    }

    private func expected(_ name: String, at minutes: Int, _ alerts: [(labels: [String: String], summary: String)]) -> String {
        var lines = ["      - eval_time: \(minutes)m", "        alertname: \(name)", "        exp_alerts:"]
        if alerts.isEmpty { lines[2] = "        exp_alerts: []" }
        for alert in alerts {
            lines.append("          - exp_labels:")
            for key in alert.labels.keys.sorted() { lines.append("              \(key): '\(alert.labels[key]!)'") }
            lines.append("            exp_annotations:")
            lines.append("              summary: '\(alert.summary.replacingOccurrences(of: "'", with: "''"))'")
        }
        return lines.joined(separator: "\n")
    }

    @Test func eachAlertFiresOnlyWhereItShould() throws {
        let (tree, _) = try render()
        defer { try? FileManager.default.removeItem(atPath: (tree as NSString).deletingLastPathComponent) }
        let job = "job=\"etcd-main\""
        func at(_ instance: String) -> String { "\(job),instance=\"\(instance)\"" }
        func labels(_ instance: String, _ severity: String, extra: [String: String] = [:]) -> [String: String] {
            ["job": "etcd-main", "instance": instance, "severity": severity].merging(extra) { $1 }
        }
        var series: [String] = []
        var checks: [String] = []

        // No leader: a has none, b has one.
        series += ["      - series: 'etcd_server_has_leader{\(at("a"))}'\n        values: '0x10'",
                   "      - series: 'etcd_server_has_leader{\(at("b"))}'\n        values: '1x10'"]
        checks.append(expected("etcdNoLeader", at: 5, [(labels("a", "critical"), "etcd member a has no leader.")]))

        // Quorum: main has 1 of 3 up; plain has its 1 of 1.
        series += ["      - series: 'up{job=\"etcd-main\",cluster=\"main\",instance=\"m1\"}'\n        values: '1x10'",
                   "      - series: 'up{job=\"etcd-main\",cluster=\"main\",instance=\"m2\"}'\n        values: '0x10'",
                   "      - series: 'up{job=\"etcd-main\",cluster=\"main\",instance=\"m3\"}'\n        values: '0x10'",
                   "      - series: 'up{job=\"etcd-plain\",cluster=\"plain\",instance=\"p1\"}'\n        values: '1x10'"]
        checks.append(expected("etcdInsufficientMembers", at: 5,
                               [(["job": "etcd-main", "cluster": "main", "severity": "critical"], "etcd cluster main has too few members up for a quorum.")]))

        // Disk latency: a about 1 s (warning and critical), b about 32 ms (warning), c 1 ms (neither).
        for (metric, name, what) in [("etcd_disk_wal_fsync_duration_seconds", "etcdHighFsyncDurations", "WAL fsync"),
                                     ("etcd_disk_backend_commit_duration_seconds", "etcdHighCommitDurations", "backend commit")] {
            series += histogram(metric, at("a"), bound: "1.024") + histogram(metric, at("b"), bound: "0.032")
                + histogram(metric, at("c"), bound: "0.001")
            let summary = { (instance: String) in "etcd \(instance): \(what) p99 too slow for etcd." }
            checks.append(expected(name, at: 20, [(labels("a", "warning"), summary("a")), (labels("a", "critical"), summary("a")),
                                                  (labels("b", "warning"), summary("b"))]))
        }

        // Quota: a at 96% (both), b at 85% (warning), c at 50%.
        for (instance, size) in [("a", 96), ("b", 85), ("c", 50)] {
            series += ["      - series: 'etcd_mvcc_db_total_size_in_bytes{\(at(instance))}'\n        values: '\(size)x20'",
                       "      - series: 'etcd_server_quota_backend_bytes{\(at(instance))}'\n        values: '100x20'"]
        }
        checks.append(expected("etcdDatabaseQuotaLowSpace", at: 15, [
            (labels("a", "warning"), "etcd a: database nearing its quota."),
            (labels("a", "critical"), "etcd a: database nearly at its quota; etcd refuses writes at 100%."),
            (labels("b", "warning"), "etcd b: database nearing its quota."),
        ]))

        // Fragmentation (instances of their own: a, b and c have sizes for the quota above):
        // d 200 MiB with 50 in use; e 200 with 150 in use; f 50 with 10 in use (under the floor).
        let mib = 1_048_576
        for (instance, size, inUse) in [("d", 200, 50), ("e", 200, 150), ("f", 50, 10)] {
            series += ["      - series: 'etcd_mvcc_db_total_size_in_use_in_bytes{\(at(instance))}'\n        values: '\(inUse * mib)x20'",
                       "      - series: 'etcd_mvcc_db_total_size_in_bytes{\(at(instance))}'\n        values: '\(size * mib)x20'"]
        }
        checks.append(expected("etcdDatabaseHighFragmentationRatio", at: 15,
                               [(labels("d", "warning"), "etcd d: under half its database in use; `muster defrag` gives the rest back.")]))

        // Leader changes: a one a minute, b none.
        series += ["      - series: 'etcd_server_leader_changes_seen_total{\(at("a"))}'\n        values: '0+1x30'",
                   "      - series: 'etcd_server_leader_changes_seen_total{\(at("b"))}'\n        values: '1+0x30'"]
        checks.append(expected("etcdHighNumberOfLeaderChanges", at: 25,
                               [(labels("a", "warning"), "etcd a: 4 or more leader changes in 15 minutes.")]))

        // Failed proposals: a 10 a second, b 1 a second.
        series += ["      - series: 'etcd_server_proposals_failed_total{\(at("a"))}'\n        values: '0+600x40'",
                   "      - series: 'etcd_server_proposals_failed_total{\(at("b"))}'\n        values: '0+60x40'"]
        checks.append(expected("etcdHighNumberOfFailedProposals", at: 35, [(labels("a", "warning"), "etcd a: many failed proposals.")]))

        // Peer round trip: a to p about 1 s, b to p 1 ms.
        series += histogram("etcd_network_peer_round_trip_time_seconds", at("a") + ",To=\"p\"", bound: "1.024")
            + histogram("etcd_network_peer_round_trip_time_seconds", at("b") + ",To=\"p\"", bound: "0.001")
        checks.append(expected("etcdMemberCommunicationSlow", at: 20,
                               [(labels("a", "warning", extra: ["To": "p"]), "etcd a: slow round trip to peer p.")]))

        // And nothing fires before its `for` has passed.
        checks.append(expected("etcdHighFsyncDurations", at: 6, []))

        let test = """
            rule_files: ['\(tree)/prometheus/etcd-alerts.yml']
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
            \(series.map { "  " + $0.replacingOccurrences(of: "\n", with: "\n  ") }.joined(separator: "\n"))
                alert_rule_test:
            \(checks.map { "  " + $0.replacingOccurrences(of: "\n", with: "\n  ") }.joined(separator: "\n"))

            """
        let path = tree + "/alerts-test.yml"
        try Data(test.utf8).write(to: URL(fileURLWithPath: path))
        let run = try promtool(["test", "rules", path])
        #expect(run.succeeded, "\(run.stdoutText)\(run.stderrText)\n\(test)")
    }
}

extension PrometheusRenderTests {
    /// A real Prometheus on the controller (loopback only) scrapes a TLS etcd 3.5.16 sandbox
    /// cluster through the rendered config, with a client certificate for `prometheus` issued in
    /// the state by `muster client-cert`: every member's target answers `up == 1` in Prometheus'
    /// own HTTP API.
    @Test func realPrometheusScrapesEveryMember() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let state = try builder.build().state.directory
            let issued = try MusterCLI.run(["client-cert", builder.inventoryPath, "--cluster", "main", "--name", "prometheus"])
            try #require(issued.succeeded, "\(issued.stdoutText)\(issued.stderrText)")

            let directory = try TemporaryDirectory.create(prefix: "muster-prometheus-live")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let rendered = try MusterCLI.run(["render", builder.inventoryPath, "--out", directory + "/tree", "--state", state])
            try #require(rendered.succeeded, "\(rendered.stderrText)")
            let port = try #require(try FreePorts.pick(1).first)
            let prometheus = try ChildProcesses.start("/usr/bin/prometheus", [
                "--config.file=\(directory)/tree/prometheus/etcd-scrape.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(port)",
            ], logPath: directory + "/prometheus.log")
            defer { ChildProcesses.stop(prometheus) }

            // Wait (bounded) until Prometheus has scraped every member once and says up == 1.
            struct Answer: Decodable {
                struct Data: Decodable { struct Series: Decodable { var metric: [String: String]; var value: [JSONValueless] }; var result: [Series] }
                var data: Data
            }
            let members = try builder.build().plan.clusters[0].members.map { "\($0.address):2379" }
            let deadline = ContinuousClock.now + .seconds(90)
            var last = ""
            while true {
                let query = try LocalProcess.run(["curl", "-sS", "--max-time", "5",
                                                  "http://127.0.0.1:\(port)/api/v1/query?query=up%7Bjob%3D%22etcd-main%22%7D%3D%3D1"], timeout: 10)
                last = query.stdoutText + query.stderrText
                if query.succeeded, let answer = try? JSONDecoder().decode(Answer.self, from: query.stdout),
                   Set(answer.data.result.compactMap { $0.metric["instance"] }) == Set(members) {
                    break
                }
                if ContinuousClock.now >= deadline {
                    let log = (try? String(contentsOfFile: directory + "/prometheus.log", encoding: .utf8)) ?? ""
                    Issue.record("Prometheus never saw every member up: \(last)\n\(log)")
                    break
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}

/// A JSON value read and thrown away (Prometheus' `[time, "value"]` pairs mix types).
struct JSONValueless: Decodable {
    init(from decoder: any Decoder) throws {}
}
