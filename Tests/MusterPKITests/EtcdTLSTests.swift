import Foundation
import MusterBasics
import Testing
@testable import MusterPKI
#if canImport(Glibc)
import Glibc
#endif

/// A real etcd 3.4 member on 127.0.0.1 speaking TLS on both ports with MusterPKI's certificates.
@Suite struct EtcdAcceptsTheCertificates {
    static let etcd = "/usr/bin/etcd", etcdctl = "/usr/bin/etcdctl"

    @Test func etcdctlWithClientCertificateWorksAndWithoutIsRefused() async throws {
        for path in [Self.etcd, Self.etcdctl] where !FileManager.default.isExecutableFile(atPath: path) {
            Issue.record("\(path) is missing: this test needs a real etcd 3.4 (fails rather than skips)")
            return
        }
        let state = try TemporaryState()
        let pki = try ClusterPKI(stateDirectory: state.path, cluster: "tls")
        let member = try pki.memberCertificates(member: "m1", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let client = try pki.clientCertificate()
        let ports = try freePorts(2)
        let peerURL = "https://127.0.0.1:\(ports[0])", clientURL = "https://127.0.0.1:\(ports[1])"
        let log = state.path + "/m1.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.etcd)
        process.arguments = [
            "--name", "m1", "--data-dir", state.path + "/m1.etcd",
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--initial-cluster", "m1=\(peerURL)", "--initial-cluster-state", "new",
            "--cert-file", member.server.certPath, "--key-file", member.server.keyPath,
            "--trusted-ca-file", member.caPath, "--client-cert-auth",
            "--peer-cert-file", member.peer.certPath, "--peer-key-file", member.peer.keyPath,
            "--peer-trusted-ca-file", member.caPath, "--peer-client-cert-auth",
        ]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer { stop(process) }

        let base = [Self.etcdctl, "--endpoints=\(clientURL)", "--dial-timeout=2s", "--command-timeout=3s"]
        let withCert = base + ["--cacert", client.caPath, "--cert", client.certPath, "--key", client.keyPath,
                               "endpoint", "health"]
        var healthy: ProcessResult?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let result = try LocalProcess.run(withCert, environment: ["ETCDCTL_API": "3"], timeout: 15)
            if result.succeeded { healthy = result; break }
            try await Task.sleep(for: .milliseconds(300))
        }
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard let healthy else {
            Issue.record("etcd never became healthy over TLS; log tail:\n\(logText.suffix(3000))")
            return
        }
        // etcdctl 3.4 prints endpoint health on stderr.
        #expect((healthy.stdoutText + healthy.stderrText).contains("is healthy"), "\(healthy.stdoutText)\(healthy.stderrText)")

        // A write over gRPC, to be sure more than /health works.
        let put = try LocalProcess.run(base + ["--cacert", client.caPath, "--cert", client.certPath,
                                               "--key", client.keyPath, "put", "k", "v"],
                                       environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(put.succeeded && put.stdoutText.contains("OK"), "\(put.stderrText)")

        // Trusting the CA but presenting no certificate: refused.
        let anonymous = try LocalProcess.run(base + ["--cacert", client.caPath, "endpoint", "health"],
                                             environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!anonymous.succeeded, "\(anonymous.stdoutText)")
        // Plain http on the TLS port: refused too.
        let plain = try LocalProcess.run([Self.etcdctl, "--endpoints=http://127.0.0.1:\(ports[1])",
                                          "--dial-timeout=2s", "--command-timeout=3s", "endpoint", "health"],
                                         environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!plain.succeeded)
        // A client certificate from another CA: refused.
        let strangerState = try TemporaryState()
        let stranger = try ClusterPKI(stateDirectory: strangerState.path, cluster: "tls").clientCertificate()
        let foreign = try LocalProcess.run(base + ["--cacert", client.caPath, "--cert", stranger.certPath,
                                                   "--key", stranger.keyPath, "endpoint", "health"],
                                           environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(!foreign.succeeded)
        // The server certificate's clientAuth usage: etcd's own gateway dials with it (etcd issue 9785).
        let asServer = try LocalProcess.run(base + ["--cacert", member.caPath, "--cert", member.server.certPath,
                                                    "--key", member.server.keyPath, "endpoint", "health"],
                                            environment: ["ETCDCTL_API": "3"], timeout: 15)
        #expect(asServer.succeeded, "\(asServer.stderrText)")
    }

    func stop(_ process: Process) {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline && kill(pid, 0) == 0 && !isZombie(pid) { usleep(20_000) }
        if process.isRunning && kill(pid, 0) == 0 && !isZombie(pid) {
            kill(pid, SIGKILL)
            let hard = Date().addingTimeInterval(5)
            while process.isRunning && Date() < hard && !isZombie(pid) { usleep(20_000) }
        }
    }

    func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state == "Z" || state == "X"
    }
}

/// Distinct ports in 20000..<60000 that 127.0.0.1 can bind right now.
func freePorts(_ count: Int) throws -> [Int] {
    var ports: [Int] = []
    var attempts = 0
    while ports.count < count {
        attempts += 1
        if attempts > 1000 { throw PKIError(path: "", message: "no free ports found") }
        let port = Int.random(in: 20000..<60000)
        if !ports.contains(port) && canBind(port) { ports.append(port) }
    }
    return ports
}

func canBind(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
