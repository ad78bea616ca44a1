import Foundation
import Testing
import MusterBasics
import MusterPlan
import MusterWorkspace
import MusterSandbox
@testable import MusterDeploy

/// What the etcd user (or any process on a member host) can make root do through muster: write
/// through a link in the log directory, be signalled or taken for a member through a pidfile, or
/// have its log lines reach the operator's terminal as escape sequences.
@Suite struct HostSecurityTests {
    private func pid(_ host: String) throws -> String { try DeploySandbox.exec(host, "cat /run/etcd/main.pid") }

    /// Kills host's member and waits (bounded) until its process is gone.
    private func killMember(_ host: String) throws {
        _ = try DeploySandbox.exec(host, """
            pid=$(cat /run/etcd/main.pid); kill "$pid"
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
            """)
    }

    @Test func aLinkTheEtcdUserPutsAtTheLogPathNeverMakesRootWriteThroughIt() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            // paths.log stays root's (it may be shared); only the cluster's own directory is etcd's.
            #expect(try DeploySandbox.exec("host1", "stat -c %U /var/log/etcd /var/log/etcd/main") == "root\netcd")

            try killMember("host1")
            let planted = try DeploySandbox.exec("host1", """
                printf 'root only\\n' > /etc/muster-root-only && chmod 600 /etc/muster-root-only
                setpriv --reuid=etcd --regid=etcd --init-groups ln -sfn /etc/muster-root-only /var/log/etcd/main/main.log
                readlink /var/log/etcd/main/main.log
                """)
            #expect(planted == "/etc/muster-root-only")
            // The start opens the log as the etcd user: refused, so the member cannot start
            // (its own doing), and root's file stays as it was.
            var message = ""
            do { _ = try await DeploySandbox.up(builder) } catch { message = "\(error)" }
            #expect(!message.isEmpty, "the member cannot open its log through the link")
            #expect(try DeploySandbox.exec("host1", "cat /etc/muster-root-only; stat -c '%U %a' /etc/muster-root-only") == "root only\nroot 600")
            #expect(!message.contains("root only"), "the triage read the log as root through the link: \(message)")

            _ = try DeploySandbox.exec("host1", "rm -f /etc/muster-root-only /var/log/etcd/main/main.log")
            let repaired = try await DeploySandbox.up(builder)
            #expect(repaired.reports.allSatisfy { $0.ok }, "\(repaired.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func aPidfileNamingAnotherProcessIsNeitherSignalledNorTakenForTheMember() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try await DeploySandbox.up(builder)
            let stranger = try DeploySandbox.exec("host1", "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
            defer { _ = try? DeploySandbox.exec("host1", "kill \(stranger) 2>/dev/null; true") }
            func pointPidfileAtStranger() throws {
                try killMember("host1")
                _ = try DeploySandbox.exec("host1", "echo \(stranger) > /run/etcd/main.pid")
            }

            // up starts the member: the pidfile's process is not an etcd muster installed.
            try pointPidfileAtStranger()
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            #expect(try pid("host1") != stranger)
            #expect(try DeploySandbox.exec("host1", "readlink /proc/$(cat /run/etcd/main.pid)/exe") == "/opt/muster/bin/etcd-3.4.23")

            // down signals nothing but muster's etcd.
            try pointPidfileAtStranger()
            try await DeploySandbox.down(builder, wipe: true)
            #expect(try DeploySandbox.exec("host1", "kill -0 \(stranger) && echo alive") == "alive")
        }
    }

    @Test func memberLogLinesAreShownWithControlCharactersEscaped() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try DeploySandbox.exec("host1", """
                id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin etcd
                install -d -o etcd -g etcd /var/log/etcd/main
                printf 'before\\n\\033]0;title\\007\\033[2J\\033[31mred\\rover\\n' > /var/log/etcd/main/main.log
                """)
            let workspace = try builder.build()
            let cluster = try #require(workspace.plan.cluster(named: "main"))
            let member = try #require(cluster.members.first { $0.host == "host1" })
            let fleet = try await Fleet.connect([try #require(workspace.inventory.host(named: "host1"))],
                                                options: DeploySandbox.options, progress: Progress(quiet: true))
            let operations = try await ClusterOperations.gather(ClusterPlan(copying: cluster, members: [member]), inventory: workspace.inventory, fleet: fleet,
                                                                progress: Progress(quiet: true), options: DeploySandbox.options, tls: [:])
            let error = await operations.failure(member, step: "start", "did not start")
            await fleet.close()
            #expect(error.message.contains("\\x1b]0;title\\x07\\x1b[2J\\x1b[31mred\\x0dover"), "\(error.message)")
            #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }, "\(error.message)")
        }
    }

    @Test func dnsmasqWithoutSystemdRunsAsItsOwnUser() async throws {
        try await onSandbox {
            // etcd 3.5 reads the plain SRV records (3.4 would need TLS for them).
            try #require(FileManager.default.isExecutableFile(atPath: DeploySandbox.etcd35), "run scripts/setup.sh: it fetches etcd 3.5")
            let builder = try DeploySandbox.inventory(.dns, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "  domain: ", with: "  configure_resolvers: true\n  domain: ")
            }
            let outcome = try await DeploySandbox.up(builder)
            // The members found each other through it: it bound port 53 and read its records.
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            let server = try #require(try builder.build().plan.cluster(named: "main")?.dns)
            let dnsmasq = try DeploySandbox.exec(server.serverHost, "cat \(Shell.quote(server.pidfile))")
            #expect(try DeploySandbox.exec(server.serverHost, "ps -o user= -p \(dnsmasq)") == "dnsmasq")
            try await DeploySandbox.down(builder, wipe: true)
            // Signalled, not waited for: allow it a bounded moment (an exited process may linger
            // as a zombie of the host's pid 1, so ask for its executable, not for its pid).
            #expect(try DeploySandbox.exec(server.serverHost, """
                i=0; while [ "$(readlink /proc/\(dnsmasq)/exe)" = /usr/sbin/dnsmasq ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
                [ "$(readlink /proc/\(dnsmasq)/exe)" = /usr/sbin/dnsmasq ] && echo running || echo gone
                """) == "gone")
        }
    }
}
