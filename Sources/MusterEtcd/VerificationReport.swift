import Foundation
import MusterBasics

/// The result of `muster verify` for one cluster: what the members said, and the checks.
public struct VerificationReport: Sendable, Equatable {
    public struct MemberRow: Sendable, Equatable {
        public var id: UInt64
        public var started: Bool
        public var name: String
        public var peerURLs: [String]
        public var clientURLs: [String]
        public var isLearner: Bool
        public var status: String { started ? "started" : "unstarted" }
    }

    public struct EndpointRow: Sendable, Equatable {
        public var endpoint: String
        /// The inventory's name for the member behind this endpoint.
        public var name: String
        public var id: UInt64? = nil
        public var version: String = ""
        public var dbSize: Int64 = 0
        public var dbSizeInUse: Int64 = 0
        public var isLeader: Bool = false
        public var isLearner: Bool = false
        public var raftTerm: UInt64 = 0
        public var raftIndex: UInt64 = 0
        public var raftAppliedIndex: UInt64 = 0
        /// The leader this member names.
        public var leader: UInt64 = 0
        /// Errors etcd itself reports in the status (e.g. `NOSPACE`).
        public var errors: [String] = []
        /// Why the status could not be read; nil when it was.
        public var error: String?
    }

    public struct HealthRow: Sendable, Equatable {
        public var endpoint: String
        public var name: String
        public var healthy: Bool
        /// Round trip of `GET /health`; nil when there was no answer.
        public var tookMilliseconds: Double?
        public var error: String?
    }

    /// What a check that did not pass means: `fail` makes the run fail (exit 1), `warn` only
    /// says so (unless `--strict`). A passing check carries the most its failure could be.
    public enum Severity: String, Sendable, Equatable {
        case fail, warn
    }

    public struct Check: Sendable, Equatable {
        public var name: String
        public var ok: Bool
        public var severity: Severity
        public var detail: String
        public init(name: String, ok: Bool, severity: Severity = .fail, detail: String) {
            self.name = name; self.ok = ok; self.severity = severity; self.detail = detail
        }

        /// Did not pass at severity `fail`.
        public var failed: Bool { !ok && severity == .fail }
        /// Did not pass at severity `warn`.
        public var warned: Bool { !ok && severity == .warn }
        /// `PASS`, `WARN` or `FAIL`, as the table prints it.
        public var verdict: String { ok ? "PASS" : severity == .warn ? "WARN" : "FAIL" }
    }

    /// Who keeps each member running on its host, as the host said (empty when verify did not
    /// ask the hosts: `up` always does, `verify` when it has SSH sessions open).
    public struct SupervisorRow: Sendable, Equatable {
        public var name: String
        public var host: String
        /// `systemd` or `process`.
        public var supervisor: String
        /// systemd's ActiveState (`active`, `failed`...), or `running` / `stopped` for a process.
        public var state: String
        /// systemd's UnitFileState (`enabled`, `disabled`); nil for a process.
        public var enabled: String?
        public var pid: Int?
        public init(name: String, host: String, supervisor: String, state: String, enabled: String?, pid: Int?) {
            self.name = name; self.host = host; self.supervisor = supervisor
            self.state = state; self.enabled = enabled; self.pid = pid
        }
    }
    public var supervisors: [SupervisorRow] = []

    public var clusterName: String
    public var expectedClusterID: UInt64
    public var observedClusterID: UInt64?
    /// The cluster version (`/version`'s `etcdcluster`, the leader raises it once every member
    /// runs a newer minor), nil when no member answered.
    public var clusterVersion: String?
    public var members: [MemberRow] = []
    public var endpoints: [EndpointRow] = []
    public var health: [HealthRow] = []
    /// In evaluation order; `orderedChecks` puts failures first.
    public var checks: [Check] = []

    public init(clusterName: String, expectedClusterID: UInt64) {
        self.clusterName = clusterName
        self.expectedClusterID = expectedClusterID
    }

    /// `verify --strict`: a warning counts as a failure.
    public var strict = false

    /// No check failed (with `strict`, none warned either).
    public var ok: Bool { !checks.isEmpty && checks.allSatisfy { strict ? $0.ok : !$0.failed } }
    /// Checks that count against the run: failures, and with `strict` warnings too.
    public var failedChecks: [Check] { checks.filter { strict ? !$0.ok : $0.failed } }
    public var warnedChecks: [Check] { checks.filter(\.warned) }
    /// Failures first, then warnings, then passes, each group in evaluation order.
    public var orderedChecks: [Check] { checks.filter(\.failed) + checks.filter(\.warned) + checks.filter(\.ok) }
    /// 0 when no check fails (with `strict`: none warns either), else 1.
    public var exitCode: Int32 { ok ? 0 : 1 }

    public func check(named name: String) -> Check? { checks.first { $0.name == name } }

    // MARK: Table

    /// Tables in the style of `etcdctl -w table`, then the checks, failures first.
    public func table() -> String {
        var out = "cluster \(clusterName)"
        if let observedClusterID { out += " (cluster ID \(EtcdIDs.hex(observedClusterID)))" }
        if let clusterVersion { out += ", cluster version \(clusterVersion)" }
        out += "\n\nmember list:\n"
        out += TextTable.render(
            header: ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
            rows: members.map {
                [EtcdIDs.hex($0.id), $0.status, $0.name, $0.peerURLs.joined(separator: ","),
                 $0.clientURLs.joined(separator: ","), String($0.isLearner)]
            })
        out += "\nendpoint status:\n"
        out += TextTable.render(
            header: ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER", "RAFT TERM",
                     "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"],
            rows: endpoints.map { row in
                guard let id = row.id, row.error == nil else {
                    return [row.endpoint, "", "", "", "", "", "", "", "", row.error ?? ""]
                }
                return [row.endpoint, EtcdIDs.hex(id), row.version, HumanBytes.format(row.dbSize),
                        String(row.isLeader), String(row.isLearner), String(row.raftTerm),
                        String(row.raftIndex), String(row.raftAppliedIndex),
                        row.errors.joined(separator: ", ")]
            })
        out += "\nendpoint health:\n"
        out += TextTable.render(
            header: ["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
            rows: health.map {
                [$0.endpoint, String($0.healthy),
                 $0.tookMilliseconds.map { String(format: "%.3fms", $0) } ?? "", $0.error ?? ""]
            })
        if !supervisors.isEmpty {
            out += "\nsupervisors:\n"
            out += TextTable.render(
                header: ["NAME", "HOST", "SUPERVISOR", "STATE", "AT BOOT", "PID"],
                rows: supervisors.map { [$0.name, $0.host, $0.supervisor, $0.state, $0.enabled ?? "-", $0.pid.map(String.init) ?? "-"] })
        }
        out += "\nchecks:\n"
        for check in orderedChecks {
            out += "\(check.verdict)  \(check.name): \(check.detail)\n"
        }
        let failed = checks.filter(\.failed).count, warned = warnedChecks.count
        let warnings = warned == 0 ? "" : ", \(warned) warned" + (strict ? " (--strict: warnings count)" : "")
        out += failed == 0 && warned == 0 ? "\nall \(checks.count) checks passed\n"
                                          : "\n\(failed) of \(checks.count) checks failed\(warnings)\n"
        return out
    }

    // MARK: JSON

    /// The document described in VERIFY_JSON.md (sorted keys, explicit nulls).
    public func jsonValue() -> JSONValue {
        .object([
            "cluster": .string(clusterName),
            "cluster_id": .string(EtcdIDs.hex(expectedClusterID)),
            "observed_cluster_id": observedClusterID.map { .string(EtcdIDs.hex($0)) } ?? .null,
            "cluster_version": clusterVersion.map(JSONValue.string) ?? .null,
            "ok": .bool(ok),
            "members": .array(members.map { member in
                .object([
                    "id": .string(EtcdIDs.hex(member.id)),
                    "status": .string(member.status),
                    "name": .string(member.name),
                    "peer_urls": .array(member.peerURLs.map(JSONValue.string)),
                    "client_urls": .array(member.clientURLs.map(JSONValue.string)),
                    "is_learner": .bool(member.isLearner),
                ])
            }),
            "endpoints": .array(endpoints.map(VerificationReport.endpointJSON)),
            "health": .array(health.map { row in
                .object([
                    "endpoint": .string(row.endpoint),
                    "name": .string(row.name),
                    "healthy": .bool(row.healthy),
                    "took_ms": row.tookMilliseconds.map(JSONValue.double) ?? .null,
                    "error": row.error.map(JSONValue.string) ?? .null,
                ])
            }),
            "supervisors": .array(supervisors.map { row in
                .object([
                    "name": .string(row.name), "host": .string(row.host), "supervisor": .string(row.supervisor),
                    "state": .string(row.state), "enabled": row.enabled.map(JSONValue.string) ?? .null,
                    "pid": row.pid.map { .int(Int64($0)) } ?? .null,
                ])
            }),
            "checks": .array(orderedChecks.map { check in
                .object(["name": .string(check.name), "ok": .bool(check.ok), "severity": .string(check.severity.rawValue),
                         "detail": .string(check.detail)])
            }),
        ])
    }

    static func endpointJSON(_ row: EndpointRow) -> JSONValue {
        let answered = row.error == nil && row.id != nil
        func ifAnswered(_ value: JSONValue) -> JSONValue { answered ? value : .null }
        var object: [String: JSONValue] = [:]
        object["endpoint"] = .string(row.endpoint)
        object["name"] = .string(row.name)
        object["id"] = row.id.map { .string(EtcdIDs.hex($0)) } ?? .null
        object["version"] = ifAnswered(.string(row.version))
        object["db_size"] = ifAnswered(.int(row.dbSize))
        object["db_size_human"] = ifAnswered(.string(HumanBytes.format(row.dbSize)))
        object["db_size_in_use"] = ifAnswered(.int(row.dbSizeInUse))
        object["is_leader"] = .bool(row.isLeader)
        object["is_learner"] = .bool(row.isLearner)
        object["leader"] = ifAnswered(.string(EtcdIDs.hex(row.leader)))
        object["raft_term"] = ifAnswered(.uint(row.raftTerm))
        object["raft_index"] = ifAnswered(.uint(row.raftIndex))
        object["raft_applied_index"] = ifAnswered(.uint(row.raftAppliedIndex))
        object["errors"] = .array(row.errors.map(JSONValue.string))
        object["error"] = row.error.map(JSONValue.string) ?? .null
        return .object(object)
    }

    /// `--output json`: pretty-printed, keys sorted, ends with a newline.
    public func json() -> String { jsonValue().serialized() }
}

/// Byte counts as etcdctl prints DB sizes (go-humanize `Bytes`: SI units, "20 kB").
public enum HumanBytes {
    public static func format(_ bytes: Int64) -> String {
        let value = Double(max(bytes, 0))
        if value < 10 { return "\(max(bytes, 0)) B" }
        let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
        let exponent = min(Int((log(value) / log(1000)).rounded(.down)), units.count - 1)
        let scaled = (value / pow(1000, Double(exponent)) * 10 + 0.5).rounded(.down) / 10
        return String(format: scaled < 10 ? "%.1f" : "%.0f", scaled) + " " + units[exponent]
    }
}

/// Text tables drawn like etcdctl's (olekukonko/tablewriter): `+---+` borders, centred upper-case
/// headers, one space of padding, cells right-aligned as `etcdctl -w table` sets them.
public enum TextTable {
    public static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        let rule = "+" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "+") + "+\n"
        func line(_ cells: [String], _ pad: (String, Int) -> String) -> String {
            "|" + widths.indices.map { index in
                " " + pad(index < cells.count ? cells[index] : "", widths[index]) + " "
            }.joined(separator: "|") + "|\n"
        }
        var out = rule + line(header, center) + rule
        for row in rows { out += line(row, right) }
        if !rows.isEmpty { out += rule }
        return out
    }

    static func center(_ text: String, _ width: Int) -> String {
        let gap = width - text.count
        let left = gap / 2
        return String(repeating: " ", count: left) + text + String(repeating: " ", count: gap - left)
    }

    static func right(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: width - text.count) + text
    }
}
