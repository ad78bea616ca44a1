import Foundation
import Testing
@testable import MusterSSH

/// A tunnel's loopback port answers muster's own process only: another local user (`nobody`),
/// and even another root process, get their connection closed without a byte from the far end.
@Suite("SSH tunnel peers")
struct TunnelPeerTests {
    /// Connects to PORT, sends one request, prints how many bytes came back.
    static let client = """
        import socket, sys
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
        s.sendall(b'GET /index.txt HTTP/1.0\\r\\n\\r\\n')
        data = b''
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
        except OSError as error:
            print('error', error)
        print('reply', len(data), data[:12])
        """

    @Test func anotherLocalUserGetsNoResponseThroughTheTunnel() async throws {
        let sshd = try await SSHDFixture.start()
        let www = "\(sshd.directory)/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "secret answer\n".write(toFile: "\(www)/index.txt", atomically: true, encoding: .utf8)
        let httpPort = try SSHDFixture.freePort()
        let httpLog = "\(sshd.directory)/http.log"
        let http = try Child(["python3", "-u", "-m", "http.server", String(httpPort), "--bind", "127.0.0.1",
                              "--directory", www], output: httpLog)
        defer { http.stop() }
        #expect(LoopbackClient.waitListening(port: httpPort))

        let session = try await sshd.connect()
        let tunnel = try await session.openTunnel(toHost: "127.0.0.1", port: httpPort)
        let port = tunnel.localPort

        let asNobody = try await offPool {
            try Child.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/python3", "-c", Self.client, String(port)], timeout: 30)
        }
        #expect(asNobody.output.contains("reply 0 "), "nobody got: \(asNobody.output)")
        let otherRootProcess = try await offPool { try Child.run(["/usr/bin/python3", "-c", Self.client, String(port)], timeout: 30) }
        #expect(otherRootProcess.output.contains("reply 0 "), "another process got: \(otherRootProcess.output)")

        // muster's own process is served, before and after.
        let reply = try await Task.detached {
            try LoopbackClient.exchange(port: port, request: "GET /index.txt HTTP/1.0\r\n\r\n")
        }.value
        let text = String(decoding: reply, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200"), "\(text)")
        #expect(text.hasSuffix("secret answer\n"))
        await tunnel.close()
        // The far end saw exactly one request: ours.
        let served = (try? String(contentsOfFile: httpLog, encoding: .utf8)) ?? ""
        #expect(served.components(separatedBy: "GET /index.txt").count - 1 == 1, "\(served)")
    }
}
