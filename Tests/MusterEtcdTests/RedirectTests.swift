import Foundation
import Testing
import MusterEtcd
import MusterTestSupport

/// No HTTP client muster makes follows a redirect: a loopback server answers 307 towards a
/// second loopback server that records every request it gets; muster reports the redirect as an
/// error (or, for the discovery service's backend client, hands the 307 back) and the second
/// server is never reached.
@Suite struct RedirectTests {
    /// `redirect PORT TARGET`: 307 to TARGET + path. `record PORT FILE`: a line per request in
    /// FILE, then 200 with an etcd-like health body.
    static let server = """
        import http.server, sys
        mode, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get('Content-Length') or 0)
                if length: self.rfile.read(length)
                if mode == 'redirect':
                    self.send_response(307)
                    self.send_header('Location', arg + self.path)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                with open(arg, 'a') as hits: hits.write(self.command + ' ' + self.path + '\\n')
                body = b'{"health":"true"}'
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = do_PUT = do_DELETE = answer
            def log_message(self, *args): pass
        http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
        """

    static func waitListening(_ port: Int) -> Bool {
        for _ in 0..<100 {
            if !FreePorts.canBind(port) { return true }
            usleep(50_000)
        }
        return false
    }

    @Test func redirectsAreErrorsAndTheirTargetIsNeverHit() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-redirect")
        let ports = try FreePorts.pick(2)
        let hits = directory.path + "/hits"
        let target = "http://127.0.0.1:\(ports[1])"
        let recorder = try ChildProcesses.start("/usr/bin/python3", ["-c", Self.server, "record", String(ports[1]), hits],
                                                logPath: directory.path + "/record.log")
        defer { ChildProcesses.forceStop(recorder) }
        let redirector = try ChildProcesses.start("/usr/bin/python3", ["-c", Self.server, "redirect", String(ports[0]), target],
                                                  logPath: directory.path + "/redirect.log")
        defer { ChildProcesses.forceStop(redirector) }
        #expect(Self.waitListening(ports[0]) && Self.waitListening(ports[1]))
        let origin = "http://127.0.0.1:\(ports[0])"

        func expectRedirectError(_ what: String, _ body: () async throws -> Void) async {
            do {
                try await body()
                Issue.record("\(what): the redirect was followed or ignored")
            } catch let error as EtcdClientError {
                #expect(error.httpStatus == 307, "\(what): \(error)")
                #expect(error.description.contains(target), "\(what): \(error)")
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        let client = EtcdClient(baseURL: origin, timeout: 5)
        await expectRedirectError("health") { _ = try await client.health() }
        await expectRedirectError("member list") { _ = try await client.memberList() }
        await expectRedirectError("v2 members") {
            _ = try await V2Keys.registeredMembers(discoveryURL: origin + "/v2/keys/_etcd/registry/token")
        }
        await expectRedirectError("discovery service") { _ = try await DiscoveryService.newToken(serviceURL: origin, size: 3) }
        // The discovery service's own backend client passes etcd's answers on: the 307 itself.
        let backend = try V2KeysClient(baseURL: origin + "/v2/keys")
        let answer = try await backend.send("GET", "_etcd/registry/token")
        #expect(answer.status == 307)
        await backend.shutdown()

        #expect(!FileManager.default.fileExists(atPath: hits), "the redirect target was reached: \((try? String(contentsOfFile: hits, encoding: .utf8)) ?? "")")
        // The recorder does record: asked directly, it answers and counts one hit.
        #expect(try await EtcdClient(baseURL: target, timeout: 5).health().healthy)
        #expect(try String(contentsOfFile: hits, encoding: .utf8) == "GET /health\n")
    }
}
