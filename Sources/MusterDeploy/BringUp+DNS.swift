import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH

/// The cluster's dnsmasq, and proof that every member resolves through it.
extension BringUp {
    func serveDNS(_ dns: DNSPlan, cluster: ClusterPlan, fleet: Fleet, inventory: Inventory) async throws {
        let pidfile = "/run/etcd/dnsmasq-\(cluster.name).pid"
        let script = """
        mkdir -p /run/etcd
        if [ -d /run/systemd/system ] && systemctl is-active -q dnsmasq 2>/dev/null; then
            systemctl restart dnsmasq
        else
            if [ -s \(Shell.quote(pidfile)) ]; then kill "$(cat \(Shell.quote(pidfile)))" 2>/dev/null; sleep 0.2; fi
            dnsmasq --conf-file=\(Shell.quote(dns.configPath)) --pid-file=\(Shell.quote(pidfile)) --listen-address=\(Shell.quote(dns.serverAddress)) --bind-interfaces --no-resolv --no-hosts --user=root
        fi
        """
        try await fleet.check(dns.serverHost, "dns", script)
        progress.host(dns.serverHost, "dns", "dnsmasq serving \(dns.configPath)")
        let configure = inventory.dns?.configureResolvers == true
        let names = dns.hostRecords.map(\.fqdn)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for host in Set(cluster.members.map(\.host)) {
                group.addTask {
                    var script = ""
                    if configure {
                        script += """
                        if ! grep -m1 '^nameserver' /etc/resolv.conf | grep -qx 'nameserver \(dns.serverAddress)'; then
                            [ -f /etc/resolv.conf.muster-backup ] || cp /etc/resolv.conf /etc/resolv.conf.muster-backup
                            { echo 'nameserver \(dns.serverAddress)'; grep -v '^nameserver \(dns.serverAddress)$' /etc/resolv.conf.muster-backup; } > /etc/resolv.conf.muster-new
                            cat /etc/resolv.conf.muster-new > /etc/resolv.conf && rm -f /etc/resolv.conf.muster-new
                        fi

                        """
                    }
                    // What etcd will see: every name through this host's own resolver.
                    script += "for n in \(Shell.join(names)); do echo \"$n $(getent ahostsv4 \"$n\" | awk 'NR==1 {print $1}')\"; done"
                    let output = try await fleet.check(host, "dns", script, timeout: 30)
                    let resolved = Dictionary(output.split(separator: "\n").map { line -> (String, String) in
                        let parts = line.split(separator: " ").map(String.init)
                        return (parts.first ?? "", parts.count > 1 ? parts[1] : "")
                    }, uniquingKeysWith: { first, _ in first })
                    for record in dns.hostRecords where resolved[record.fqdn] != record.address {
                        throw DeployError(host: host, step: "dns",
                                          "\(record.fqdn) resolves to '\(resolved[record.fqdn] ?? "")', not \(record.address): this host's resolver must use the dnsmasq on \(dns.serverHost) (\(dns.serverAddress)); set dns.configure_resolvers: true to let muster put it first in /etc/resolv.conf")
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.note("cluster \(cluster.name): every member resolves \(names.count) names through \(dns.serverHost)")
    }
}
