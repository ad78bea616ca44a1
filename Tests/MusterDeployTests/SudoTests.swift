import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterPlan
import MusterWorkspace
import MusterSSH

/// A non-root SSH user: every privileged step runs through `sudo -n`, stdin (the streamed
/// binary) included, and a sudo that wants a password is explained instead of hanging.
@Suite(.serialized) struct SudoTests {
    private static let hosts = ["host1", "host2", "host3"]

    /// `deploy` on every host, with root's authorized key and the given sudoers rule.
    static func makeDeployUser(sudoers rule: String) throws {
        for host in Self.hosts {
            _ = try DeploySandbox.exec(host, """
                command -v sudo >/dev/null || { echo 'sudo is not installed (scripts/setup.sh installs it)' >&2; exit 1; }
                id -u deploy >/dev/null 2>&1 || useradd -m -s /bin/bash -p '*' deploy  # '*': no password, yet not locked (sshd without PAM refuses locked accounts)
                install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
                install -m 0600 -o deploy -g deploy /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
                echo \(Shell.quote(rule)) > /etc/sudoers.d/muster-test && chmod 0440 /etc/sudoers.d/muster-test
                """)
        }
    }

    static func removeDeployUser() {
        for host in Self.hosts {
            _ = try? DeploySandbox.exec(host, "rm -f /etc/sudoers.d/muster-test; userdel -r deploy 2>/dev/null; true")
        }
    }

    private func deployInventory() throws -> PlanBuilder {
        try DeploySandbox.inventory(.static) { $0.replacingOccurrences(of: "  user: root\n", with: "  user: deploy\n") }
    }

    @Test func aPasswordlessSudoUserBringsTheClusterUp() async throws {
        try await onSandbox {
            defer { Self.removeDeployUser() }
            try Self.makeDeployUser(sudoers: "deploy ALL=(ALL) NOPASSWD: ALL")
            for host in Self.hosts { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            let builder = try deployInventory()
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            // Written by root through sudo; the member runs as etcd, not as the SSH user.
            #expect(try DeploySandbox.exec("host2", "stat -c '%U %a' /opt/muster/bin/etcd-3.4.23 /etc/etcd/main/conf.yml")
                    == "root 755\nroot 640")
            #expect(try DeploySandbox.exec("host2", "ps -o user= -p $(cat /run/etcd/main.pid)") == "etcd")
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func aSudoThatWantsAPasswordIsExplained() async throws {
        try await onSandbox {
            defer { Self.removeDeployUser() }
            try Self.makeDeployUser(sudoers: "deploy ALL=(ALL) ALL")
            let before = try Self.hosts.map { try DeploySandbox.exec($0, "find /etc/etcd /var/lib/etcd 2>/dev/null | sort") }
            do {
                _ = try await DeploySandbox.up(try deployInventory())
                Issue.record("up should stop at sudo")
            } catch let error as SSHError {
                #expect(error.kind == .sudoNeedsPassword)
                #expect("\(error)".contains("wants a password for deploy"), "\(error)")
            } catch {
                Issue.record("expected the sudo explanation, got \(error)")
            }
            #expect(try Self.hosts.map { try DeploySandbox.exec($0, "find /etc/etcd /var/lib/etcd 2>/dev/null | sort") } == before)
        }
    }
}
