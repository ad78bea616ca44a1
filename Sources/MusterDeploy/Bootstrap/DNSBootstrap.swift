import Foundation
import MusterBasics
import MusterPlan
import MusterWorkspace

/// DNS SRV discovery: muster's dnsmasq serves the cluster's SRV and host records, and every
/// member must resolve them through its own resolver before the first one starts.
struct DNSBootstrap: BootstrapMode {
    let dns: DNSPlan
    var needsEveryHostBeforeStart: Bool { true }

    func beforeStart(_ cluster: ClusterPlan, in workspace: Workspace, context: BootstrapContext,
                     operations: ClusterOperations) async throws {
        let fleet = operations.fleet
        let supervisor = operations.supervisor(on: dns.serverHost)
        do {
            try await fleet.check(dns.serverHost, "dns", supervisor.serveDNSCommand(dns, cluster: cluster.name, unitDirectory: workspace.inventory.paths.systemd))
        } catch let error as DeployError {
            throw DeployError(host: dns.serverHost, cluster: cluster.name, step: "dns",
                              "cluster '\(cluster.name)': dnsmasq on the DNS server \(dns.serverHost) did not start: \(error.message)")
        }
        context.progress.host(dns.serverHost, "dns", "dnsmasq serving \(dns.configPath) (\(supervisor.rawValue))")
        let configure = workspace.inventory.dns?.configureResolvers == true
        let names = dns.hostRecords.map(\.fqdn)
        let dns = dns
        try await withThrowingTaskGroup(of: Void.self) { group in
            for host in Set(cluster.members.map(\.host)) {
                group.addTask {
                    let output = try await fleet.check(host, "dns", Self.resolveScript(dns, names: names, configure: configure), timeout: 30)
                    let resolved = Dictionary(output.split(separator: "\n").map { line -> (String, String) in
                        let parts = line.split(separator: " ").map(String.init)
                        return (parts.first ?? "", parts.count > 1 ? parts[1] : "")
                    }, uniquingKeysWith: { first, _ in first })
                    for record in dns.hostRecords where resolved[record.fqdn] != record.address {
                        throw DeployError(host: host, cluster: cluster.name, step: "dns",
                                          "cluster '\(cluster.name)': \(record.fqdn) resolves to '\(resolved[record.fqdn] ?? "")', not \(record.address): this host's resolver must use the dnsmasq on \(dns.serverHost) (\(dns.serverAddress)), which may be down; set dns.configure_resolvers: true to let muster put it first in /etc/resolv.conf")
                    }
                }
            }
            try await group.waitForAll()
        }
        context.progress.note("cluster \(cluster.name): every member resolves \(names.count) names through \(dns.serverHost)")
    }

    func tearDown(_ cluster: ClusterPlan, in workspace: Workspace, wipe: Bool, operations: ClusterOperations) async throws {
        let supervisor = operations.supervisor(on: dns.serverHost)
        try await operations.fleet.check(dns.serverHost, "dns", supervisor.stopDNSCommand(dns, cluster: cluster.name, unitDirectory: workspace.inventory.paths.systemd))
        operations.progress.host(dns.serverHost, "dns", "\(cluster.name): dnsmasq stopped, its config removed")
    }

    /// What etcd will see: every name through this host's own resolver (put first in its
    /// resolv.conf when the inventory says so; the old file is kept beside it).
    static func resolveScript(_ dns: DNSPlan, names: [String], configure: Bool) -> String {
        var script = ""
        if configure {
            let line = Shell.quote("nameserver \(dns.serverAddress)")
            script += """
            if ! grep -m1 '^nameserver' /etc/resolv.conf | grep -qx \(line); then
                [ -f /etc/resolv.conf.muster-backup ] || cp /etc/resolv.conf /etc/resolv.conf.muster-backup
                { echo \(line); grep -vx \(line) /etc/resolv.conf.muster-backup; } > /etc/resolv.conf.muster-new
                cat /etc/resolv.conf.muster-new > /etc/resolv.conf && rm -f /etc/resolv.conf.muster-new
            fi

            """
        }
        // A dnsmasq that has just started may not answer yet: wait (bounded, 4 s) until every
        // name resolves, then report what each resolves to.
        script += "i=0; while [ $i -lt 20 ]; do ok=1; for n in \(Shell.join(names)); do getent ahostsv4 \"$n\" >/dev/null || ok=0; done; [ $ok = 1 ] && break; sleep 0.2; i=$((i+1)); done\n"
        return script + "for n in \(Shell.join(names)); do echo \"$n $(getent ahostsv4 \"$n\" | awk 'NR==1 {print $1}')\"; done"
    }
}
