import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterPKI
import MusterWorkspace
import MusterSandbox

/// Keys and certificates as the hosts see them: no private key in any process's argv while `up`
/// runs (root or a sudo user), and each certificate good for its own port only.
@Suite(.serialized) struct CredentialTests {
    private func tlsInventory(user: String = "root") throws -> PlanBuilder {
        try DeploySandbox.inventory(.static) {
            $0.replacingOccurrences(of: "  main:\n    members: [host1, host2, host3]\n    tls: false", with: "  main:\n    members: [host1, host2, host3]\n    tls: true")
                .replacingOccurrences(of: "  user: root\n", with: "  user: \(user)\n")
        }
    }

    /// Every base64 line of the cluster's private keys in the state.
    private func keyLines(_ pki: String) throws -> Set<String> {
        let keys = try FileManager.default.contentsOfDirectory(atPath: pki).filter { $0.hasSuffix(".key") }
        return Set(try keys.flatMap { name in
            try String(contentsOfFile: "\(pki)/\(name)", encoding: .utf8).split(separator: "\n")
                .map(String.init).filter { !$0.hasPrefix("-----") && $0.count >= 16 }
        })
    }

    @Test(arguments: ["root", "deploy"])
    func noPrivateKeyInAnyCommandLineDuringATLSUp(_ user: String) async throws {
        try await onSandbox {
            if user == "deploy" { try SudoTests.makeDeployUser(sudoers: "deploy ALL=(ALL) NOPASSWD: ALL") }
            defer { if user == "deploy" { SudoTests.removeDeployUser() } }
            // The binary streams again, so the apply command that carries the keys lives a while.
            for host in ["host1", "host2", "host3"] { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            let builder = try tlsInventory(user: user)
            let hosts = try DeploySandbox.acquire().hosts
            let watch = CommandLineWatch(namespacesOf: hosts.map(\.sshdPid))
            #expect(watch.namespaceCount == 3)
            watch.start()
            let outcome: BringUp.Outcome
            do { outcome = try await DeploySandbox.up(builder) } catch { _ = watch.stop(); throw error }
            let seen = watch.stop()
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")

            // The watch saw the apply commands themselves (through sudo for the sudo user).
            let applies = seen.filter { $0.contains(".tmp.muster") }
            #expect(applies.contains { $0.contains("/pki/server.key.tmp.muster") }, "no apply command seen in \(watch.rounds) rounds")
            if user == "deploy" { #expect(applies.contains { $0.hasPrefix("sudo -n ") }, "\(applies)") }
            #expect(!seen.contains { $0.contains("PRIVATE KEY") }, "\(seen.filter { $0.contains("PRIVATE KEY") })")
            let lines = try keyLines("\(try builder.build().state.directory)/pki/main")
            #expect(lines.count > 10)
            let leaked = seen.filter { line in lines.contains { line.contains($0) } }
            #expect(leaked.isEmpty, "key material in argv: \(leaked)")
            // conf.yml (which may carry a discovery token) travels on stdin too, root's and the
            // etcd group's to read.
            #expect(!seen.contains { $0.contains("initial-cluster-token") }, "conf.yml in argv: \(seen.filter { $0.contains("initial-cluster-token") }.prefix(1))")
            #expect(try DeploySandbox.exec("host2", "stat -c '%a %U %G' /etc/etcd/main/conf.yml") == "640 root etcd")
            // The keys arrived whole, the etcd user's alone.
            #expect(try DeploySandbox.exec("host2", "stat -c '%a %U' /etc/etcd/main/pki/server.key /etc/etcd/main/pki/peer.key") == "600 etcd\n600 etcd")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// curl on `host` with one certificate against one URL; the HTTP status, or nil when the TLS
    /// handshake (or the request) was refused. From a member host: etcd also refuses a
    /// certificate whose IP SANs do not name the connecting address.
    private func status(from host: String, _ url: String, ca: String, cert: String, key: String) throws -> Int? {
        let output = try DeploySandbox.exec(host, """
            curl -sS --http1.1 --max-time 5 --cacert \(ca) --cert \(cert) --key \(key) -o /dev/null -w '%{http_code}' \(url) 2>/tmp/muster-curl.err || { echo " refused: $(cat /tmp/muster-curl.err)"; }
            """)
        return output.contains("refused") ? nil : Int(output)
    }

    @Test func aClientCertificateIsNoPeerCredentialAndAPeerCertificateNoClientOne() async throws {
        try await onSandbox {
            let builder = try tlsInventory()
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            // muster's client certificate, put on host2 through its root as the controller sees it.
            let pki = "\(try builder.build().state.directory)/pki/main"
            let host2 = try DeploySandbox.host("host2")
            for name in ["client.crt", "client.key"] {
                try FileManager.default.copyItem(atPath: "\(pki)/\(name)", toPath: "/proc/\(host2.sshdPid)/root/tmp/muster-\(name)")
            }
            defer { _ = try? DeploySandbox.exec("host2", "rm -f /tmp/muster-client.crt /tmp/muster-client.key /tmp/muster-curl.err") }
            let address = try DeploySandbox.host("host1").address
            let peerURL = "https://\(address):2380/members", clientURL = "https://\(address):2379/health"
            let own = "/etc/etcd/main/pki"
            let peerCA = "\(own)/peer-ca.crt", clientCA = "\(own)/ca.crt"
            let client = (cert: "/tmp/muster-client.crt", key: "/tmp/muster-client.key")
            // Each certificate on its own port: accepted (so the refusals below are not a broken curl).
            #expect(try status(from: "host2", peerURL, ca: peerCA, cert: "\(own)/peer.crt", key: "\(own)/peer.key") == 200)
            #expect(try status(from: "host2", clientURL, ca: clientCA, cert: client.cert, key: client.key) == 200)
            // muster's client certificate and a member's server certificate are refused as peers.
            #expect(try status(from: "host2", peerURL, ca: peerCA, cert: client.cert, key: client.key) == nil)
            #expect(try status(from: "host2", peerURL, ca: peerCA, cert: "\(own)/server.crt", key: "\(own)/server.key") == nil)
            // A peer certificate is refused as a client.
            #expect(try status(from: "host2", clientURL, ca: clientCA, cert: "\(own)/peer.crt", key: "\(own)/peer.key") == nil)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A cluster whose PKI was made before muster had a peer CA keeps its one CA: its members
    /// trust nothing else on the peer port, so a new CA could only reach them all at once.
    @Test func aClusterMadeBeforeThePeerCAKeepsWorkingWithItsOneCA() async throws {
        try await onSandbox {
            let builder = try tlsInventory()
            let pki = ClusterPKI.directory(stateDirectory: try builder.build().state.directory, cluster: "main")
            _ = try CertificateAuthority(directory: pki, commonName: "muster CA for main")
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            #expect(!FileManager.default.fileExists(atPath: "\(pki)/peer-ca.key"))
            #expect(try DeploySandbox.exec("host1", "cmp /etc/etcd/main/pki/ca.crt /etc/etcd/main/pki/peer-ca.crt && echo same") == "same")
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0 && !again.changed)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
