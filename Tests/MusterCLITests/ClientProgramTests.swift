import Foundation
import MusterTestSupport
import Testing

/// `muster init`, `muster client-cert` and `muster env --for`, on the built binary. None of them
/// contacts a host, so a temporary directory is their whole world.
@Suite struct ClientProgramTests {
    private func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-client-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// openssl's verdict, not muster's.
    private func openssl(_ arguments: [String]) throws -> (status: Int32, stdout: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private let tlsInventory = """
        member: { version: 3.5.16 }
        hosts:
          h1: { address: 10.9.0.1 }
          h2: { address: 10.9.0.2 }
          h3: { address: 10.9.0.3 }
        clusters:
          main: { members: [h1, h2, h3] }

        """

    @Test(arguments: ["static", "discovery", "dns"])
    func initWritesAnInventoryRenderTakesAsWritten(bootstrap: String) throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/etcd.yml"
        let made = try MusterBinary().run(["init", "--hosts", "10.9.0.1,10.9.0.2,10.9.0.3", "--bootstrap", bootstrap, "--out", file])
        #expect(made.status == 0, "\(made)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains("address: 10.9.0.3"))
        // Written with the member version the machine's etcd reports: render asks /usr/bin/etcd.
        let rendered = try MusterBinary().run(["render", file, "--out", dir + "/rendered", "--output", "json"])
        #expect(rendered.status == 0, "\(rendered)")
        let conf = try String(contentsOfFile: dir + "/rendered/etcd3/etc/etcd/main/conf.yml", encoding: .utf8)
        #expect(conf.contains("https://10.9.0.3:2380"), "TLS is on by default")
        switch bootstrap {
        case "discovery": #expect(conf.contains("discovery:"), "\(conf)")
        case "dns": #expect(conf.contains("discovery-srv:"), "\(conf)")
        default: #expect(conf.contains("initial-cluster:"), "\(conf)")
        }
    }

    @Test func initWithoutHostsIsTheExampleAndNeverOverwrites() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let example = try MusterBinary().run(["init"])
        #expect(example.status == 0 && example.stdoutText.contains("192.0.2.11") && example.stdoutText.contains("documentation examples"), "\(example)")
        let file = dir + "/etcd.yml"
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: file))
        let refused = try MusterBinary().run(["init", "--out", file])
        #expect(refused.status == 2 && refused.stderrText.contains("--force"), "\(refused)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "mine\n")
        let forced = try MusterBinary().run(["init", "--out", file, "--force"])
        let written = try String(contentsOfFile: file, encoding: .utf8)
        #expect(forced.status == 0 && written.contains("clusters:"), "\(forced)")
    }

    @Test(arguments: ["10.9.0.1,not-an-address", "10.9.0.1,10.9.0.1", "10.9.0.1,$(reboot)"])
    func initRefusesWhatIsNoAddressList(hosts: String) throws {
        let run = try MusterBinary().run(["init", "--hosts", hosts])
        #expect(run.status == 2 && run.stdout.isEmpty && run.stderrText.contains("--hosts"), "\(run)")
    }

    @Test func clientCertIssuesANamedClientCertificateFromTheClusterCA() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inventory = dir + "/inventory.yml"
        try Data(tlsInventory.utf8).write(to: URL(fileURLWithPath: inventory))
        let out = dir + "/for-prometheus"
        let run = try MusterBinary().run(["client-cert", inventory, "--name", "prometheus", "--out", out])
        #expect(run.status == 0, "\(run)")
        let pki = dir + "/.muster/inventory/pki/main"
        #expect(FileManager.default.fileExists(atPath: pki + "/client-prometheus.crt"))
        for file in ["ca.crt", "prometheus.crt", "prometheus.key"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) missing")
        }
        let keyMode = try FileManager.default.attributesOfItem(atPath: out + "/prometheus.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        // openssl, not muster, judges the certificate: signed by the cluster's client CA, named,
        // for client authentication only.
        let verified = try openssl(["verify", "-CAfile", out + "/ca.crt", "-purpose", "sslclient", out + "/prometheus.crt"])
        #expect(verified.status == 0, "\(verified)")
        let text = try openssl(["x509", "-in", out + "/prometheus.crt", "-noout", "-subject", "-ext", "extendedKeyUsage"])
        #expect(text.stdout.contains("CN = prometheus") || text.stdout.contains("CN=prometheus"), "\(text)")
        #expect(text.stdout.contains("TLS Web Client Authentication") && !text.stdout.contains("Server Authentication"), "\(text)")
        // The peer CA does not sign it: no peer port takes it.
        let peer = try openssl(["verify", "-CAfile", pki + "/peer-ca.crt", out + "/prometheus.crt"])
        #expect(peer.status != 0)
        // Again: the same certificate, nothing issued anew.
        let before = try Data(contentsOf: URL(fileURLWithPath: pki + "/client-prometheus.crt"))
        #expect(try MusterBinary().run(["client-cert", inventory, "--name", "prometheus"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: pki + "/client-prometheus.crt")) == before)
    }

    @Test(arguments: ["muster", "../x", "", "-x", "a b"])
    func clientCertRefusesANameThatIsNoProgramsName(name: String) throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inventory = dir + "/inventory.yml"
        try Data(tlsInventory.utf8).write(to: URL(fileURLWithPath: inventory))
        let run = try MusterBinary().run(["client-cert", inventory, "--name=" + name])
        #expect(run.status == 2, "\(run)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/.muster/inventory/pki/main/ca.key"), "nothing written for a refused name")
    }

    @Test func envForEachProgramNamesTheEndpointsAndItsOwnCertificate() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inventory = dir + "/inventory.yml"
        try Data(tlsInventory.utf8).write(to: URL(fileURLWithPath: inventory))
        let pki = dir + "/.muster/inventory/pki/main"
        let endpoints = "https://10.9.0.1:2379,https://10.9.0.2:2379,https://10.9.0.3:2379"

        let etcdctl = try MusterBinary().run(["env", inventory])
        #expect(etcdctl.stdoutText == "export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=\(endpoints) ETCDCTL_CACERT=\(pki)/ca.crt ETCDCTL_CERT=\(pki)/client.crt ETCDCTL_KEY=\(pki)/client.key\n", "\(etcdctl)")

        let apiserver = try MusterBinary().run(["env", inventory, "--for", "kube-apiserver"])
        #expect(apiserver.stdoutText == """
            --etcd-servers=\(endpoints)
            --etcd-cafile=\(pki)/ca.crt
            --etcd-certfile=\(pki)/client-kube-apiserver.crt
            --etcd-keyfile=\(pki)/client-kube-apiserver.key

            """, "\(apiserver)")

        let kubeadm = try MusterBinary().run(["env", inventory, "--for", "kubeadm", "--cert-dir", "/etc/kubernetes/pki/etcd"])
        #expect(kubeadm.stdoutText == """
            apiVersion: kubeadm.k8s.io/v1beta4
            kind: ClusterConfiguration
            etcd:
              external:
                endpoints:
                  - https://10.9.0.1:2379
                  - https://10.9.0.2:2379
                  - https://10.9.0.3:2379
                caFile: /etc/kubernetes/pki/etcd/ca.crt
                certFile: /etc/kubernetes/pki/etcd/kube-apiserver.crt
                keyFile: /etc/kubernetes/pki/etcd/kube-apiserver.key

            """, "\(kubeadm)")

        let patroni = try MusterBinary().run(["env", inventory, "--for", "patroni", "--name", "pg"])
        #expect(patroni.stdoutText == """
            etcd3:
              hosts: 10.9.0.1:2379,10.9.0.2:2379,10.9.0.3:2379
              protocol: https
              cacert: \(pki)/ca.crt
              cert: \(pki)/client-pg.crt
              key: \(pki)/client-pg.key

            """, "\(patroni)")
        // Each program's certificate was issued, signed by the cluster's CA.
        for name in ["kube-apiserver", "pg"] {
            let verified = try openssl(["verify", "-CAfile", pki + "/ca.crt", "\(pki)/client-\(name).crt"])
            #expect(verified.status == 0, "\(name): \(verified)")
        }
    }
}
