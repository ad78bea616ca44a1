import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterInventory
import MusterPKI
import MusterSandbox
import MusterWorkspace

/// A member's keys as credentials (issue 28), on real etcd 3.4.23 and 3.5.16 with TLS: a
/// member's server key is no client credential where etcd lets its gateway present another
/// certificate (3.5+), the JSON gateway still serves, no member certificate is an etcd user,
/// and `down --wipe-data` leaves no private key on any host.
@Suite(.serialized) struct MemberCertificateTests {
    /// curl from the controller with one client certificate: the HTTP status and body, or nil
    /// when the TLS handshake (or the request) was refused.
    private func post(_ url: String, body: String, ca: String, cert: String, key: String) throws -> (status: Int, body: String)? {
        let result = try LocalProcess.run(["curl", "-sS", "--http1.1", "--max-time", "5", "--cacert", ca, "--cert", cert, "--key", key,
                                           "-X", "POST", "-d", body, "-w", "\n%{http_code}", url], timeout: 30)
        guard result.succeeded, let status = result.stdoutText.split(separator: "\n").last.flatMap({ Int($0) }) else { return nil }
        return (status, result.stdoutText)
    }

    private func etcdctl(_ endpoint: String, _ arguments: [String], ca: String, cert: String, key: String) throws -> ProcessResult {
        try LocalProcess.run(["etcdctl", "--endpoints=\(endpoint)", "--dial-timeout=3s", "--command-timeout=5s",
                              "--cacert=\(ca)", "--cert=\(cert)", "--key=\(key)"] + arguments,
                             environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    private func clientURL(_ host: String) throws -> String { "https://\(try DeploySandbox.host(host).address):2379" }

    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func aServerKeyIsNoClientCredentialOfAnotherMemberAndTheGatewayServes(binary: String) async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster(binary: binary)
            let version = try EtcdVersionProfile(try MemberBinary.versionBlocking(of: binary))
            let ca = "\(pki)/ca.crt"
            let muster = (cert: "\(pki)/client.crt", key: "\(pki)/client.key")
            // The JSON gateway (`/v3/kv/*` over HTTPS) answers on every member: a write through
            // one, read back through each.
            let put = try post(try clientURL("host1") + "/v3/kv/put", body: #"{"key":"Z2F0ZXdheQ==","value":"c2VydmVz"}"#,
                               ca: ca, cert: muster.cert, key: muster.key)
            #expect(put?.status == 200, "\(String(describing: put))")
            for host in ["host1", "host2", "host3"] {
                let range = try post(try clientURL(host) + "/v3/kv/range", body: #"{"key":"Z2F0ZXdheQ=="}"#,
                                     ca: ca, cert: muster.cert, key: muster.key)
                #expect(range?.status == 200 && range?.body.contains("c2VydmVz") == true, "\(host): \(String(describing: range))")
            }
            // host2's server key against host1's client port.
            let server = try post(try clientURL("host1") + "/v3/kv/range", body: #"{"key":"Z2F0ZXdheQ=="}"#,
                                  ca: ca, cert: "\(pki)/host2-server.crt", key: "\(pki)/host2-server.key")
            if version.line != "3.4" {
                #expect(server == nil, "a member's server certificate was taken as a client one: \(String(describing: server))")
                // The gateway's certificate is trusted by its own member's port alone.
                let gateway = (cert: "\(pki)/host2-gateway.crt", key: "\(pki)/host2-gateway.key")
                let elsewhere = try post(try clientURL("host1") + "/v3/kv/range", body: #"{"key":"Z2F0ZXdheQ=="}"#, ca: ca, cert: gateway.cert, key: gateway.key)
                #expect(elsewhere == nil, "\(String(describing: elsewhere))")
                let own = try post(try clientURL("host2") + "/v3/kv/range", body: #"{"key":"Z2F0ZXdheQ=="}"#, ca: ca, cert: gateway.cert, key: gateway.key)
                #expect(own?.status == 200, "\(String(describing: own))")
                #expect(try DeploySandbox.exec("host2", "stat -c '%a %U' /etc/etcd/main/pki/gateway.key") == "600 etcd")
            } else {
                // etcd 3.4 has no `client-cert-file`: its gateway presents the server certificate,
                // which must stay a client one (docs/security.md says so).
                #expect(server?.status == 200, "\(String(describing: server))")
                #expect(!FileManager.default.fileExists(atPath: "\(pki)/host2-gateway.crt"))
            }
            // A re-run changes nothing: the certificates are reused.
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0 && !again.changed)

            // `down --wipe-data` deletes every member's private keys (the gateway's too) on its host.
            try await DeploySandbox.down(builder, wipe: true)
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "ls /etc/etcd/main/pki/*.key 2>/dev/null; true") == "", "\(host)")
            }
        }
    }

    /// Before, a member's certificates had its name as CN, which etcd takes for the user name of
    /// a client certificate: an operator's user of that name (here `host2`, as `root` would be on
    /// a host named root) was that member's key. Now they have none, and etcd refuses the empty
    /// user name, so the member's client-capable certificate is no user at all.
    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func noMemberCertificateIsAUserEvenOneNamedLikeItsHost(binary: String) async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster(binary: binary)
            let version = try EtcdVersionProfile(try MemberBinary.versionBlocking(of: binary))
            let ca = "\(pki)/ca.crt", endpoint = try clientURL("host2")
            func asMuster(_ arguments: [String]) throws -> ProcessResult {
                try etcdctl(endpoint, arguments, ca: ca, cert: "\(pki)/client.crt", key: "\(pki)/client.key")
            }
            for arguments in [["user", "add", "root", "--new-user-password=sandbox-root"], ["user", "grant-role", "root", "root"],
                              ["user", "add", "host2", "--new-user-password=sandbox-host2"], ["user", "grant-role", "host2", "root"],
                              ["auth", "enable"]] {
                let result = try asMuster(arguments)
                #expect(result.succeeded, "\(arguments): \(result.stderrText)")
            }
            // host2's certificate that its own client port takes as a client one: the server
            // certificate on 3.4, the gateway's on 3.5.
            let base = version.line == "3.4" ? "host2-server" : "host2-gateway"
            let asMember = try etcdctl(endpoint, ["put", "/member-as-user", "yes"], ca: ca, cert: "\(pki)/\(base).crt", key: "\(pki)/\(base).key")
            #expect(!asMember.succeeded, "host2's certificate acted as user host2: \(asMember.stdoutText)")
            #expect(asMember.stderrText.contains("user name is empty") || asMember.stderrText.contains("permission denied"),
                    "\(asMember.stderrText)")
            // The user itself works (the refusal above is the certificate's, not a broken setup).
            let asUser = try asMuster(["--user=host2:sandbox-host2", "put", "/user-host2", "yes"])
            #expect(asUser.succeeded, "\(asUser.stderrText)")
            #expect(try asMuster(["--user=root:sandbox-root", "auth", "disable"]).succeeded)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A 3.5 cluster whose hosts hold no gateway certificate (made by a muster before it): a
    /// restore writes a conf.yml that names one, so it pushes the certificates with it, and the
    /// members start (etcd refuses to start on a `client-cert-file` it cannot read).
    @Test func aRestoreBringsTheCertificatesItsConfigNames() async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster(binary: DeploySandbox.etcd35)
            let saved = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true)).run())
            for host in ["host1", "host2", "host3"] {
                _ = try DeploySandbox.exec(host, "rm -f /etc/etcd/main/pki/gateway.crt /etc/etcd/main/pki/gateway.key /etc/etcd/main/pki/client-port-trust.crt")
                for suffix in ["crt", "key"] { try FileManager.default.removeItem(atPath: "\(pki)/\(host)-gateway.\(suffix)") }
            }
            var restore = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true), snapshot: saved.snapshot.file)
            restore.force = true
            let restored = try #require(try await restore.run())
            #expect(restored.report.ok, "\(restored.report.table())")
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "stat -c '%a %U' /etc/etcd/main/pki/gateway.key") == "600 etcd", "\(host)")
                #expect(FileManager.default.fileExists(atPath: "\(pki)/\(host)-gateway.key"), "\(host): kept in the state")
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A cluster whose members serve certificates of the former form (the member's name as CN,
    /// put in place while they run: etcd reads its certificate files at each handshake) is moved
    /// by the next `up`: renewed, each member restarted once, the cluster whole and its keys kept.
    @Test func certificatesOfTheFormerFormAreRolledOutByTheNextUp() async throws {
        try await onSandbox {
            let (builder, pki) = try await DeploySandbox.formedTLSCluster()
            let authorities = try ClusterPKI(stateDirectory: try builder.build().state.directory, cluster: "main")
            let hosts = ["host1", "host2", "host3"]
            for host in hosts {
                let root = "/proc/\(try DeploySandbox.host(host).sshdPid)/root/etc/etcd/main/pki"
                let sans = try DeploySandbox.exec(host, "openssl x509 -in /etc/etcd/main/pki/server.crt -noout -ext subjectAltName | tail -n 1")
                    .split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                let dns = sans.filter { $0.hasPrefix("DNS:") }.map { String($0.dropFirst(4)) }
                let ips = sans.filter { $0.hasPrefix("IP Address:") }.map { String($0.dropFirst(11)) }
                for (kind, authority, base) in [(CertificateKind.serverDialingItself, authorities.authority, "server"), (.peer, authorities.peerAuthority, "peer")] {
                    let former = try authority.issue(kind: kind, commonName: host, dnsNames: dns, ipAddresses: ips)
                    for (text, state, onHost) in [(former.privateKeyPEM, "\(pki)/\(host)-\(base).key", "\(root)/\(base).key"),
                                                  (former.certificatePEM, "\(pki)/\(host)-\(base).crt", "\(root)/\(base).crt")] {
                        try Data(text.utf8).write(to: URL(fileURLWithPath: state))
                        try Data(text.utf8).write(to: URL(fileURLWithPath: onHost))
                    }
                }
            }
            let endpoint = try clientURL("host1")
            let muster = (ca: "\(pki)/ca.crt", cert: "\(pki)/client.crt", key: "\(pki)/client.key")
            #expect(try etcdctl(endpoint, ["put", "/before-the-move", "kept"], ca: muster.ca, cert: muster.cert, key: muster.key).succeeded)
            let served = try DeploySandbox.exec("host2", "openssl s_client -connect $(hostname -I | cut -d' ' -f1):2379 -CAfile /etc/etcd/main/pki/ca.crt </dev/null 2>/dev/null | openssl x509 -noout -subject -nameopt RFC2253")
            #expect(served.contains("CN=host2"), "host2 serves the former certificate: \(served)")
            let running = try hosts.map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }

            let moved = try await DeploySandbox.up(builder)
            #expect(moved.changed && moved.reports.allSatisfy { $0.ok }, "\(moved.reports.map { $0.table() })")
            let after = try hosts.map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            #expect(zip(running, after).allSatisfy { $0 != $1 }, "each member restarted with its new certificates")
            for host in hosts {
                #expect(!(try DeploySandbox.exec(host, "openssl x509 -in /etc/etcd/main/pki/server.crt -noout -subject -nameopt RFC2253")).contains("CN="), "\(host)")
            }
            let kept = try etcdctl(endpoint, ["get", "/before-the-move", "--print-value-only"], ca: muster.ca, cert: muster.cert, key: muster.key)
            #expect(kept.stdoutText == "kept\n", "\(kept.stderrText)")
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0 && !again.changed)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
