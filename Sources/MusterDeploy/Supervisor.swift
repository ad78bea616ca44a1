import Foundation
import MusterBasics
import MusterEtcd
import MusterPlan

/// Who keeps a member (and muster's dnsmasq) running on a host: systemd where it is PID 1, else
/// a detached process with a pidfile, unless the inventory's `supervisor:` forces one. Chosen
/// per host from preflight's facts; every start, stop, restart, "is it running" and "its last
/// log lines" goes through here, and nothing else in muster branches on systemd.
enum Supervisor: String, Sendable {
    case systemd, process

    init(facts: HostFacts?) {
        switch facts?.supervisorChoice ?? .auto {
        case .systemd: self = .systemd
        case .process: self = .process
        case .auto: self = facts?.hasSystemd == true ? .systemd : .process
        }
    }

    static func unit(of member: MemberPlan) -> String { "etcd-\(member.cluster).service" }

    /// Starts the member; prints one line saying what happened.
    func startCommand(_ member: MemberPlan) -> String {
        switch self {
        case .systemd:
            let unit = Shell.quote(Self.unit(of: member))
            // --no-block: a notify unit's start waits for etcd to join, and etcd joins only once
            // enough peers run; muster starts them one after another.
            return "systemctl daemon-reload && systemctl enable -q \(unit) && systemctl start --no-block \(unit) && echo \"started unit \(Self.unit(of: member))\""
        case .process:
            return "sh \(Shell.quote(member.paths.startScript))"
        }
    }

    /// Stops the member, waiting a bounded time for etcd to exit; prints what it did.
    func stopCommand(_ member: MemberPlan, disable: Bool = false) -> String {
        switch self {
        case .systemd:
            let unit = Shell.quote(Self.unit(of: member))
            return """
            if systemctl is-active -q \(unit) 2>/dev/null; then systemctl stop \(unit); echo stopped unit; else echo not running; fi
            \(disable ? "systemctl disable -q \(unit) 2>/dev/null || true" : "true")
            """
        case .process:
            let pidfile = Shell.quote(member.paths.pidfile)
            return """
            if \(Self.memberPidCheck(member)); then
                kill "$pid"
                i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
                kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
                rm -f \(pidfile); echo "stopped pid $pid"
            else
                rm -f \(pidfile); echo not running
            fi
            """
        }
    }

    /// A shell condition that sets `pid` from the member's pidfile and holds only when that
    /// process is an etcd muster installed (an upgrade stops the old version's process): a stale
    /// pidfile may name a process that reused the number. Nothing else is signalled, reported
    /// as the member or keeps it from being started.
    static func memberPidCheck(_ member: MemberPlan) -> String {
        let installed = Shell.quote((member.paths.binary as NSString).deletingLastPathComponent + "/etcd-")
        // `read`, not `cat`: a builtin, one process fewer on every host of every run.
        return "read -r pid 2>/dev/null < \(Shell.quote(member.paths.pidfile)) && kill -0 \"$pid\" 2>/dev/null && exe=$(readlink /proc/$pid/exe) && case \"$exe\" in \(installed)*) true;; *) false;; esac"
    }

    /// The member's last log lines: the journal under systemd, its log file otherwise.
    func logCommand(_ member: MemberPlan, lines: Int = 25) -> (command: String, source: String) {
        switch self {
        case .systemd:
            return ("journalctl -u \(Shell.quote(Self.unit(of: member))) -n \(lines) --no-pager -o cat", "journalctl -u \(Self.unit(of: member))")
        case .process:
            // Read as the etcd user, whose directory it is: a link there must not make root
            // show a file of root's.
            return ("setpriv --reuid=etcd --regid=etcd --init-groups tail -n \(lines) \(Shell.quote(member.paths.log))", member.paths.log)
        }
    }

    /// Preflight lines that print `CLUSTER pid PID` and `CLUSTER exe PATH` for a running member.
    static func runningScript(_ member: MemberPlan) -> String {
        let c = Shell.quote(member.cluster)
        let unit = Shell.quote(unit(of: member))
        // The process's start in clock ticks since boot (field 22 of /proc/PID/stat, the 20th
        // after the command name's parenthesis), read by builtins; preflight prints the host's
        // uptime and tick rate once, and `HostFacts.parse` takes the difference.
        return """
        if [ -d /run/systemd/system ] && pid=$(systemctl show -p MainPID --value \(unit) 2>/dev/null) && [ "${pid:-0}" -gt 0 ]; then via=systemd; exe=$(readlink /proc/$pid/exe); else via=process; \(memberPidCheck(member)) || pid=; fi; [ -n "$pid" ] && echo \(c) pid "$pid" && echo \(c) via $via && echo \(c) exe "$exe" && read -r stat < /proc/$pid/stat && stat=${stat##*) } && set -- $stat && echo \(c) startticks "${20}"
        """
    }

    // MARK: muster's dnsmasq for a DNS cluster

    static func dnsUnit(_ cluster: String) -> String { "muster-dnsmasq-\(cluster).service" }

    /// Serves `dns`'s records: a unit enabled at boot under systemd (peers of a DNS cluster dial
    /// each other by name after a reboot), a detached process with a pidfile otherwise.
    func serveDNSCommand(_ dns: DNSPlan, cluster: String, unitDirectory: String) -> String {
        let dnsmasq = "dnsmasq --conf-file=\(Shell.quote(dns.configPath)) --listen-address=\(Shell.quote(dns.serverAddress)) --bind-interfaces --no-resolv --no-hosts"
        switch self {
        case .systemd:
            let unitName = Self.dnsUnit(cluster)
            let unit = """
            [Unit]
            Description=muster's dnsmasq for cluster \(cluster)
            Before=etcd-\(cluster).service
            After=network.target

            [Service]
            ExecStart=/usr/sbin/\(dnsmasq) --keep-in-foreground --user=dnsmasq
            Restart=on-failure

            [Install]
            WantedBy=multi-user.target

            """
            let path = Shell.quote("\(unitDirectory)/\(unitName)")
            // A host whose own dnsmasq service reads /etc/dnsmasq.d serves the records itself.
            return """
            if systemctl is-active -q dnsmasq 2>/dev/null; then systemctl restart dnsmasq; exit 0; fi
            \(Self.ensureDNSUser)
            printf '%s' \(Shell.quote(unit)) > \(path).tmp && mv -f \(path).tmp \(path)
            systemctl daemon-reload
            systemctl enable -q \(Shell.quote(unitName))
            systemctl restart \(Shell.quote(unitName))
            # A simple unit counts as started before dnsmasq has bound its port: wait (bounded).
            i=0; while ! ss -Hlnu | awk '{print $4}' | grep -qx \(Shell.quote(dns.serverAddress + ":53")) && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
            """
        case .process:
            let pidfile = Shell.quote(dns.pidfile)
            return """
            mkdir -p \(Shell.quote((dns.pidfile as NSString).deletingLastPathComponent))
            if pid=$(cat \(pidfile) 2>/dev/null) && [ "$(readlink /proc/$pid/exe)" = /usr/sbin/dnsmasq ]; then kill "$pid" 2>/dev/null; sleep 0.2; fi
            \(Self.ensureDNSUser)
            # dnsmasq binds port 53 and reads its conf as root, then runs as this user.
            \(dnsmasq) --pid-file=\(pidfile) --user=dnsmasq
            """
        }
    }

    private static let ensureDNSUser = "id -u dnsmasq >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dnsmasq"

    func stopDNSCommand(_ dns: DNSPlan, cluster: String, unitDirectory: String) -> String {
        switch self {
        case .systemd:
            let unitName = Shell.quote(Self.dnsUnit(cluster))
            return """
            rm -f \(Shell.quote(dns.configPath))
            if systemctl is-active -q dnsmasq 2>/dev/null; then systemctl restart dnsmasq; fi
            systemctl disable -q --now \(unitName) 2>/dev/null || true
            rm -f \(Shell.quote("\(unitDirectory)/\(Self.dnsUnit(cluster))")); systemctl daemon-reload
            """
        case .process:
            let pidfile = Shell.quote(dns.pidfile)
            return """
            rm -f \(Shell.quote(dns.configPath))
            if pid=$(cat \(pidfile) 2>/dev/null) && [ "$(readlink /proc/$pid/exe)" = /usr/sbin/dnsmasq ]; then kill "$pid" 2>/dev/null || true; fi
            rm -f \(pidfile)
            """
        }
    }
}

extension Supervisor {
    /// One line per member: `supervisor state enabled pid` (systemd: ActiveState, UnitFileState,
    /// MainPID; a process: running or stopped, `-`, its pid).
    static func stateScript(_ members: [MemberPlan]) -> String {
        members.map { stateLine($0) }.joined(separator: "\n")
    }

    /// `member`'s line of `stateScript`, each line starting with `prefix` (preflight tells its
    /// lines apart by one).
    static func stateLine(_ member: MemberPlan, prefix: String = "") -> String {
        let unit = Shell.quote(unit(of: member))
        let p = Shell.quote(prefix)
        let systemd = "systemctl show -p ActiveState -p UnitFileState -p MainPID \(unit) | awk -F= -v p=\(p) '{v[$1] = $2} END {print p \"systemd\", v[\"ActiveState\"], (v[\"UnitFileState\"] == \"\" ? \"-\" : v[\"UnitFileState\"]), v[\"MainPID\"] + 0}'"
        // A member kept as a process on a systemd host (`supervisor: process`) shows as one.
        return """
        if [ -d /run/systemd/system ] && [ "$(systemctl show -p MainPID --value \(unit) 2>/dev/null)" -gt 0 ] 2>/dev/null; then \(systemd); \
        elif \(memberPidCheck(member)); then echo \(p)"process running - $pid"; \
        elif [ -d /run/systemd/system ]; then \(systemd); else echo \(p)"process stopped - 0"; fi
        """
    }

    /// A line of `stateScript` as a row of the verification report.
    static func stateRow(_ line: Substring, member: MemberPlan) -> VerificationReport.SupervisorRow? {
        let words = line.split(separator: " ").map(String.init)
        guard words.count == 4 else { return nil }
        let pid = Int(words[3]).flatMap { $0 > 0 ? $0 : nil }
        return .init(name: member.name, host: member.host, supervisor: words[0], state: words[1],
                     enabled: words[2] == "-" ? nil : words[2], pid: pid)
    }
}

extension ClusterOperations {
    /// What each member's host says of its supervisor; members whose host cannot be asked are
    /// left out (verification stands on its own checks).
    func supervisorStates(_ cluster: ClusterPlan) async -> [VerificationReport.SupervisorRow] {
        // Every host at once: one round trip in all, not one per host after the other.
        let hosts = cluster.members.map(\.host).uniqued()
        let outputs = await withTaskGroup(of: (String, String?).self) { group in
            for host in hosts {
                let script = Supervisor.stateScript(cluster.members.filter { $0.host == host })
                group.addTask { (host, try? await fleet.check(host, "supervisor", script, timeout: 15)) }
            }
            var outputs: [String: String] = [:]
            for await (host, output) in group { outputs[host] = output }
            return outputs
        }
        var rows: [VerificationReport.SupervisorRow] = []
        for host in hosts {
            guard let output = outputs[host] else { continue }
            let members = cluster.members.filter { $0.host == host }
            for (member, line) in zip(members, output.split(separator: "\n")) {
                if let row = Supervisor.stateRow(line, member: member) { rows.append(row) }
            }
        }
        return rows
    }

    /// The supervisors' states as preflight found them: what they still are when the run changed
    /// nothing on the cluster's hosts (a re-run then costs one channel per host, not two).
    func supervisorStatesFromPreflight(_ cluster: ClusterPlan) -> [VerificationReport.SupervisorRow] {
        cluster.members.compactMap { member in
            facts[member.host]?.members[cluster.name]?.supervisorState.flatMap { Supervisor.stateRow($0[...], member: member) }
        }
    }
}
