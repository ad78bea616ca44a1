import Foundation
import MusterEtcd
import MusterTestSupport
import Testing
@testable import MusterDiscovery

/// What a hostile or broken client could do to the service before, each as a regression test
/// (run against the code before the hardening with `MUSTER_DISCOVERY_BINARY`; each failed).
@Suite struct HardeningTests {
    typealias Fixture = ServiceTests.Fixture

    static func longPoll(_ url: String, index: Int, seconds: TimeInterval = 40) -> Task<HTTPProbe.Answer?, Never> {
        Task { try? await HTTPProbe.send("GET", url + "?wait=true&recursive=true&waitIndex=\(index)", timeout: seconds) }
    }

    static func index(of url: String) async throws -> Int {
        let listing = try await HTTPProbe.send("GET", url)
        return try #require(listing.headers["x-etcd-index"].flatMap(Int.init), "\(listing.text)")
    }

    // MARK: Long polls

    /// Before: six long polls took URLSession's six connections to the backing etcd, and `/new`
    /// waited for one until its 10 s bound, then answered 503.
    @Test func longPollsNeverStarveNewOrRegistrations() async throws {
        let fixture = try await Fixture.start { $0.waitTimeout = 20 }
        let made = try await fixture.newToken(size: 5)
        let index = try await Self.index(of: made.url)
        let polls = (0..<8).map { _ in Self.longPoll(made.url, index: index + 1000) }
        try await fixture.service.waitUntil("8 long polls wait") { $0.longPolls.count == 8 }
        let fresh = try await HTTPProbe.send("GET", fixture.service.url + "/new?size=3", timeout: 5)
        #expect(fresh.status == 200, "\(fresh.status) \(fresh.text)")
        let registered = try await HTTPProbe.send("PUT", made.url + "/a1?prevExist=false", form: "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A2380", timeout: 5)
        #expect(registered.status == 201, "\(registered.status) \(registered.text)")
        for poll in polls { poll.cancel() }
        await fixture.finish()
    }

    /// A token's long polls are capped by its size (429 beyond), all long polls by
    /// `maxLongPolls` (503 beyond), each with a body that says so; the rest keeps working.
    @Test func longPollsAreCappedPerTokenAndInAll() async throws {
        let fixture = try await Fixture.start { $0.waitTimeout = 15; $0.maxLongPolls = 8 }
        let first = try await fixture.newToken(size: 1)   // at most 2 * 1 + 4 = 6 polls
        let second = try await fixture.newToken(size: 1)
        let firstIndex = try await Self.index(of: first.url)
        let secondIndex = try await Self.index(of: second.url)
        let firstPolls = (0..<6).map { _ in Self.longPoll(first.url, index: firstIndex + 1) }
        try await fixture.service.waitUntil("6 long polls wait") { $0.longPolls.count == 6 }
        let seventh = try await HTTPProbe.send("GET", first.url + "?wait=true&recursive=true&waitIndex=\(firstIndex + 1)", timeout: 5)
        #expect(seventh.status == 429, "\(seventh.status) \(seventh.text)")
        #expect(seventh.text.contains("long polls already wait on this token"), "\(seventh.text)")
        let secondPolls = (0..<2).map { _ in Self.longPoll(second.url, index: secondIndex + 1000) }
        try await fixture.service.waitUntil("8 long polls wait") { $0.longPolls.count == 8 }
        let ninth = try await HTTPProbe.send("GET", second.url + "?wait=true&recursive=true&waitIndex=\(secondIndex + 1000)", timeout: 5)
        #expect(ninth.status == 503, "\(ninth.status) \(ninth.text)")
        #expect(ninth.text.contains("long polls already wait on this service"), "\(ninth.text)")
        #expect(ninth.headers["retry-after"] == "1")
        // Short calls still go through.
        #expect(try await HTTPProbe.send("GET", fixture.service.url + "/new", timeout: 5).status == 200)
        #expect(try await HTTPProbe.send("PUT", first.url + "/a1", form: "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A1", timeout: 5).status == 201)
        // The waiters on the first token see the registration.
        for poll in firstPolls {
            let event = await poll.value
            #expect(event?.status == 200 && event?.value == "m1=http://127.0.0.1:1", "\(event?.text ?? "nil")")
        }
        for poll in secondPolls { poll.cancel() }
        // A finished poll gives its place back: the cap is about polls waiting now.
        let again = try await HTTPProbe.send("GET", first.url + "?wait=true&recursive=true&waitIndex=1", timeout: 5)
        #expect(again.status == 200, "\(again.status) \(again.text)")
        await fixture.finish()
    }

    // MARK: Storage

    /// Before: any client could add any number of 64 KiB member keys under a token.
    @Test func memberKeysAndValuesAreBounded() async throws {
        let fixture = try await Fixture.start()
        let made = try await fixture.newToken(size: 1)   // at most 2 * 1 + 4 = 6 member keys
        for index in 0..<6 {
            let put = try await HTTPProbe.send("PUT", made.url + "/m\(index)?prevExist=false", form: "value=m\(index)%3Dhttp%3A%2F%2F127.0.0.1%3A1")
            #expect(put.status == 201, "\(put.status) \(put.text)")
        }
        let seventh = try await HTTPProbe.send("PUT", made.url + "/m6?prevExist=false", form: "value=m6%3Dhttp%3A%2F%2F127.0.0.1%3A1")
        #expect(seventh.status == 403, "\(seventh.status) \(seventh.text)")
        #expect(seventh.text.contains("at most 6"), "\(seventh.text)")
        // A key already there may still be rewritten (it takes no more room), and etcd still
        // answers a duplicate create with its own 412.
        #expect(try await HTTPProbe.send("PUT", made.url + "/m0", form: "value=m0%3Dhttp%3A%2F%2F127.0.0.1%3A2").status == 200)
        #expect(try await HTTPProbe.send("PUT", made.url + "/m0?prevExist=false", form: "value=x").status == 412)

        // Values: a few KiB at most.
        let other = try await fixture.newToken(size: 3)
        let big = String(repeating: "a", count: DiscoveryRules.maxValueBytes + 1)
        let tooBig = try await HTTPProbe.send("PUT", other.url + "/big?prevExist=false", form: "value=" + big)
        #expect(tooBig.status == 413, "\(tooBig.status) \(tooBig.text)")
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(other.token)/big")).status == 404)

        // Concurrent registrations cannot overshoot the limit.
        let raced = try await fixture.newToken(size: 1)
        let url = raced.url
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask { _ = try? await HTTPProbe.send("PUT", url + "/r\(index)?prevExist=false", form: "value=r%3Dhttp%3A%2F%2Fh%3A1") }
            }
        }
        let stored = try await HTTPProbe.send("GET", fixture.registry("/\(raced.token)"))
        #expect(stored.childNames.filter { !$0.hasPrefix("_") }.count == 6, "\(stored.text)")
        await fixture.finish()
    }

    /// Before: `PUT /TOKEN/_config/size` made a token of the client's choosing (never swept: no
    /// `_config/created`) or changed another's size.
    @Test func configIsWrittenOnlyByNew() async throws {
        let fixture = try await Fixture.start()
        let made = try await fixture.newToken(size: 3)
        let resize = try await HTTPProbe.send("PUT", made.url + "/_config/size", form: "value=5")
        #expect(resize.status == 403, "\(resize.status) \(resize.text)")
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(made.token)/_config/size")).value == "3")
        let chosen = "0123456789abcdef0123456789abcdef"
        let planted = try await HTTPProbe.send("PUT", fixture.service.url + "/\(chosen)/_config/size", form: "value=3")
        #expect(planted.status == 403, "\(planted.status) \(planted.text)")
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(chosen)")).status == 404, "no token of the client's choosing")
        for (method, path) in [("PUT", "/_config/created"), ("DELETE", "/_config/size"), ("DELETE", "/_config/created"), ("PUT", "/_config")] {
            let answer = try await HTTPProbe.send(method, made.url + path, form: method == "PUT" ? "value=1" : nil)
            #expect(answer.status == 403, "\(method) \(path): \(answer.status) \(answer.text)")
        }
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(made.token)/_config/created")).status == 200)
        await fixture.finish()
    }

    // MARK: Watches

    /// Before: `?recursive=true&wait=true` from an early index returned the hidden
    /// `_config/created` event (and `_config/size`'s).
    @Test func watchesHideHiddenKeys() async throws {
        let fixture = try await Fixture.start { $0.waitTimeout = 3 }
        let made = try await fixture.newToken()
        // From index 1: etcd's history holds the token's own `_config` writes first.
        let url = made.url
        let waiter = Task { try await HTTPProbe.send("GET", url + "?wait=true&recursive=true&waitIndex=1") }
        try await fixture.service.waitUntil("the watch waits") { $0.longPolls.count == 1 }
        _ = try await HTTPProbe.send("PUT", made.url + "/a1?prevExist=false", form: "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A1")
        let event = try await waiter.value
        #expect(event.status == 200, "\(event.status) \(event.text)")
        #expect(!event.text.contains("_config"), "\(event.text)")
        #expect(event.value == "m1=http://127.0.0.1:1", "\(event.text)")
        // Nothing but hidden events: an empty answer at the bound, never a hidden key.
        let quiet = try await fixture.newToken()
        let idle = try await HTTPProbe.send("GET", quiet.url + "?wait=true&recursive=true&waitIndex=1")
        #expect(idle.status == 200 && !idle.text.contains("_config"), "\(idle.text)")
        await fixture.finish()
    }

    // MARK: Base URL

    /// Before: without `--base-url`, the `Host` header went into the token URL.
    @Test func hostHeaderIsNeverReflected() async throws {
        let fixture = try await Fixture.start()
        let answer = try await RawConnection.request(port: fixture.service.port,
                                                     "GET /new?size=3 HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n")
        #expect(answer.status == 200, "\(answer.status) \(answer.body)")
        #expect(answer.body.hasPrefix(fixture.service.url + "/"), "\(answer.body)")
        #expect(!answer.body.contains("evil"))
        await fixture.finish()
    }

    @Test func listeningBeyondLoopbackNeedsABaseURL() async throws {
        #expect(DiscoveryServerOptions.isLoopback("127.0.0.1") && DiscoveryServerOptions.isLoopback("127.1.2.3"))
        #expect(DiscoveryServerOptions.isLoopback("::1"))
        for other in ["0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "127.0.0"] {
            #expect(!DiscoveryServerOptions.isLoopback(other), "\(other)")
        }
        // Refused before any socket is opened.
        let server = try DiscoveryServer(options: DiscoveryServerOptions(host: "0.0.0.0", port: 0, etcdURL: "http://127.0.0.1:1")) { _ in }
        await #expect(throws: DiscoveryServerError.self) { try await server.run() }
        do { try await server.run() } catch { #expect("\(error)".contains("--base-url"), "\(error)") }
    }

    // MARK: Slow clients

    /// Before: a PUT announcing 100 bytes and sending 6 held its connection (and a handler)
    /// forever; so did half a head, and an idle connection.
    @Test func slowClientsAreCut() async throws {
        let fixture = try await Fixture.start { $0.headerTimeout = 1; $0.bodyTimeout = 1; $0.idleTimeout = 2 }
        let made = try await fixture.newToken()
        let port = fixture.service.port
        let shortBody = try await RawConnection.open(port: port)
        try await shortBody.send("PUT /\(made.token)/a1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nvalue=")
        let halfHead = try await RawConnection.open(port: port)
        try await halfHead.send("GET /health HTTP/1.1\r\nHost: x\r\n")
        let idle = try await RawConnection.open(port: port)
        let closedBody = await shortBody.waitClosed(seconds: 8)
        let closedHead = await halfHead.waitClosed(seconds: 8)
        let closedIdle = await idle.waitClosed(seconds: 8)
        #expect(closedBody, "a body 94 bytes short was waited for")
        #expect(shortBody.received.hasPrefix("HTTP/1.1 408"), "\(shortBody.received)")
        #expect(closedHead, "half a head was waited for")
        #expect(halfHead.received.hasPrefix("HTTP/1.1 408"), "\(halfHead.received)")
        #expect(closedIdle, "an idle connection was kept")
        for connection in [shortBody, halfHead, idle] { await connection.close() }
        // Nothing was registered by the cut request.
        #expect(try await HTTPProbe.send("GET", made.url).childNames.isEmpty)
        await fixture.finish()
    }

    /// The server's own HTTP/1.1: kept-alive and pipelined requests are answered in order.
    @Test func keepAliveAndPipelinedRequestsAreAnswered() async throws {
        let fixture = try await Fixture.start()
        let made = try await fixture.newToken()
        let connection = try await RawConnection.open(port: fixture.service.port)
        try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = await connection.waitAnswer(seconds: 5)
        #expect(first?.status == 200 && first?.body == "ok\n", "\(connection.received)")
        // Three at once: the second waits for the first's backend call, the third for both.
        try await connection.send("GET /\(made.token)/_config/size HTTP/1.1\r\nHost: x\r\n\r\n"
            + "PUT /\(made.token)/a1?prevExist=false HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16\r\n\r\nvalue=m1%3Dh%3A1"
            + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let closed = await connection.waitClosed(seconds: 10)
        #expect(closed, "\(connection.received)")
        let statuses = connection.received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["200", "200", "201", "200"], "\(connection.received)")
        await connection.close()
        await fixture.finish()
    }

    /// Before: nothing bounded the connections: half-sent heads could take every descriptor.
    @Test func connectionsAreCapped() async throws {
        let fixture = try await Fixture.start { $0.maxConnections = 16; $0.headerTimeout = 30 }
        let port = fixture.service.port
        var holders: [RawConnection] = []
        for _ in 0..<16 {
            let connection = try await RawConnection.open(port: port)
            try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n")
            holders.append(connection)
        }
        try await fixture.service.waitUntil("16 connections open") { $0.openConnections(from: "127.0.0.1") == 16 }
        let refused = try await RawConnection.open(port: port)
        let answer = await refused.waitAnswer(seconds: 5)
        #expect(answer?.status == 503, "\(refused.received)")
        #expect(answer?.body.contains("too many connections") == true)
        #expect(await refused.waitClosed(seconds: 5))
        for holder in holders { await holder.close() }
        // Their places are given back.
        let deadline = Date().addingTimeInterval(10)
        var health: HTTPProbe.Answer?
        while Date() < deadline {
            health = try? await HTTPProbe.send("GET", fixture.service.url + "/health", timeout: 2)
            if health?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(health?.status == 200)
        await fixture.finish()
    }

    /// Before: decoding `p0=&p1=&...` was quadratic (a duplicate check per pair): forty 64 KiB
    /// bodies kept the service's threads busy, and `/health` answered after 6.5 s.
    @Test func formDecodingIsLinearAndBounded() async throws {
        var pairs = ""
        var index = 0
        while pairs.utf8.count < 64 * 1024 - 16 { pairs += "p\(index)=&"; index += 1 }
        #expect(DiscoveryRules.decodeForm(pairs) == nil, "more than \(DiscoveryRules.maxFormPairs) pairs are refused")
        let sixteen = (0..<DiscoveryRules.maxFormPairs).map { "p\($0)=" }.joined(separator: "&")
        #expect(DiscoveryRules.decodeForm(sixteen)?.count == DiscoveryRules.maxFormPairs)
        #expect(DiscoveryRules.decodeForm("a=%e2%82%ac&b=%ff") == nil, "not UTF-8")
        #expect(DiscoveryRules.decodeForm("a=%e2%82%ac")?.first?.value == "€")
        #expect(DiscoveryRules.decodeForm("a=%4") == nil && DiscoveryRules.decodeForm("a=%") == nil)
        // One pair of 64 KiB costs one pass.
        #expect(DiscoveryRules.decodeForm("value=" + String(repeating: "%41", count: 20000))?.first?.value.count == 20000)

        let fixture = try await Fixture.start { $0.maxConnectionsPerClient = 64 }  // forty bodies at once from 127.0.0.1
        let made = try await fixture.newToken()
        let url = made.url
        let body = Data(pairs.utf8)
        let flood = Task {
            await withTaskGroup(of: Int.self) { group in
                for member in 0..<40 {
                    group.addTask { (try? await HTTPProbe.send("PUT", url + "/f\(member)", body: body, timeout: 20))?.status ?? 0 }
                }
                var statuses: [Int] = []
                for await status in group { statuses.append(status) }
                return statuses
            }
        }
        // Asked while the flood is answered: once its first answer is logged.
        let deadline = ContinuousClock.now + .seconds(10)
        while !fixture.service.logText.contains("-> 400"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let health = try await HTTPProbe.send("GET", fixture.service.url + "/health", timeout: 3)
        #expect(health.status == 200)
        let statuses = await flood.value
        #expect(statuses.allSatisfy { $0 == 400 }, "\(statuses)")
        await fixture.finish()
    }
}
