import Foundation
import MusterTestSupport
import Testing
@testable import MusterDiscovery

/// Per-client quotas of `discovery serve`: one source address (127.0.0.2 here) cannot take the
/// connections, long polls or tokens another address (127.0.0.3) needs to form a cluster.
/// Before them, a flooder held every connection and the other address was answered 503.
@Suite struct QuotaTests {
    static let flooder = "127.0.0.2"
    static let other = "127.0.0.3"

    static func get(_ target: String) -> String {
        "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    }

    static func put(_ target: String, value: String) -> String {
        let body = "value=" + value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        return "PUT \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    /// Waits, bounded, until `condition` holds; true if it did.
    static func eventually(seconds: Double = 10, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    @Test func aFloodFromOneAddressLeavesAnotherServed() async throws {
        let fixture = try await ServiceTests.Fixture.start {
            $0.maxConnections = 48
            $0.maxConnectionsPerClient = 12
            $0.maxLongPolls = 40
            $0.maxLongPollsPerClient = 6
            $0.newTokensBurst = 3
            $0.newTokensPerMinute = 1
            $0.waitTimeout = 60
            $0.firstByteTimeout = 60
        }
        let server = try #require(fixture.service.server, "the quotas are tested in process")
        let port = fixture.service.port

        // Tokens: a burst of three, then 429 with the wait in Retry-After.
        var made: [RawAnswer] = []
        for _ in 0..<5 { made.append(try await RawConnection.request(port: port, Self.get("/new?size=3"), from: Self.flooder)) }
        #expect(made.map(\.status) == [200, 200, 200, 429, 429], "\(made.map(\.body))")
        #expect(made[3].headers["retry-after"].flatMap(Int.init).map { $0 > 0 } == true, "\(made[3].headers)")
        #expect(made[3].body.contains("too many new tokens from your address"), "\(made[3].body)")
        let flooderToken = String(made[0].body.split(separator: "/").last ?? "")
        // Those requests' connections are closed before the next part counts.
        #expect(await Self.eventually { server.openConnections(from: Self.flooder) == 0 })

        // Long polls: six wait, the rest are refused for this address.
        var polls: [RawConnection] = []
        for _ in 0..<9 {
            let poll = try await RawConnection.open(port: port, from: Self.flooder)
            try await poll.send("GET /\(flooderToken)?wait=true&recursive=true&waitIndex=1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            polls.append(poll)
        }
        #expect(await Self.eventually { server.longPolls.count == 6 }, "long polls waiting: \(server.longPolls.count)")
        let refusedPolls = { polls.filter { RawAnswer($0.received)?.status == 429 && $0.received.contains("from your address") } }
        #expect(await Self.eventually { refusedPolls().count == 3 }, "refused long polls: \(refusedPolls().count)")
        for poll in refusedPolls() { await poll.close() }
        #expect(await Self.eventually { server.openConnections(from: Self.flooder) == 6 })

        // Silent sockets: the flooder's share of connections fills, and every one past it is
        // answered 503 and closed at once; the service's own table keeps room for others.
        var silent: [RawConnection] = []
        for _ in 0..<48 { silent.append(try await RawConnection.open(port: port, from: Self.flooder)) }
        let refusedSilent = { silent.filter { $0.isClosed && $0.received.contains("too many connections from your address") }.count }
        #expect(await Self.eventually { refusedSilent() == 42 }, "refused: \(refusedSilent()) of 48 (6 fit beside 6 polls)")
        #expect(silent.filter { !$0.isClosed }.count == 6)
        #expect(server.openConnections(from: Self.flooder) == 12)

        // Meanwhile the other address makes its token, registers three members and lists them.
        let fresh = try await RawConnection.request(port: port, Self.get("/new?size=3"), from: Self.other)
        #expect(fresh.status == 200, "\(fresh.status) \(fresh.body)")
        let token = String(fresh.body.split(separator: "/").last ?? "")
        for member in 0..<3 {
            let registered = try await RawConnection.request(port: port, Self.put("/\(token)/m\(member)?prevExist=false",
                                                                                 value: "m\(member)=http://127.0.0.3:\(2380 + member)"),
                                                             from: Self.other)
            #expect(registered.status == 201, "\(registered.status) \(registered.body)")
        }
        let listing = try await RawConnection.request(port: port, Self.get("/\(token)"), from: Self.other)
        let nodes = ((try? JSONSerialization.jsonObject(with: Data(listing.body.utf8)) as? [String: Any])?["node"] as? [String: Any])?["nodes"] as? [Any]
        #expect(listing.status == 200 && nodes?.count == 3, "\(listing.body)")
        // ... and can long-poll too: the flooder's polls are its own share, not everyone's.
        let otherPoll = try await RawConnection.open(port: port, from: Self.other)
        try await otherPoll.send("GET /\(token)?wait=true&recursive=true&waitIndex=1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await Self.eventually { server.longPolls.count == 7 }, "long polls waiting: \(server.longPolls.count)")

        for connection in polls + silent + [otherPoll] { await connection.close() }
        await fixture.finish()
    }

    @Test func tokensStopAtTheServiceCapUntilTheSweepDropsOldOnes() async throws {
        let fixture = try await ServiceTests.Fixture.start {
            $0.maxTokens = 2
            $0.newTokensBurst = 100
            $0.maxTokenAge = 3600
        }
        let port = fixture.service.port
        var statuses: [Int] = []
        var last: RawAnswer?
        for client in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
            let answer = try await RawConnection.request(port: port, Self.get("/new"), from: client)
            statuses.append(answer.status)
            last = answer
        }
        #expect(statuses == [200, 200, 503], "\(statuses)")
        #expect(last?.body.contains("holds 2 tokens, its cap") == true, "\(last?.body ?? "")")
        await fixture.finish()
    }

    @Test func theSweepRecountsSoTheCapFreesAsTokensExpire() async throws {
        let fixture = try await ServiceTests.Fixture.start {
            $0.maxTokens = 1
            $0.newTokensBurst = 100
            $0.maxTokenAge = 1
            $0.sweepInterval = 1
        }
        let port = fixture.service.port
        let first = try await RawConnection.request(port: port, Self.get("/new"), from: Self.other)
        #expect(first.status == 200)
        // Once the first token is older than a second, a sweep drops it and makes room.
        let freed = await Self.eventually(seconds: 20) {
            (try? await RawConnection.request(port: port, Self.get("/new"), from: Self.other))?.status == 200
        }
        #expect(freed, "no room made within 20 s")
        await fixture.finish()
    }

    @Test func aSilentConnectionIsClosedSoon() async throws {
        let fixture = try await ServiceTests.Fixture.start {
            $0.firstByteTimeout = 1
            $0.idleTimeout = 120
        }
        let connection = try await RawConnection.open(port: fixture.service.port, from: Self.flooder)
        #expect(await connection.waitClosed(seconds: 20), "a connection that sent nothing stayed open")
        await fixture.finish()
    }

    @Test func anIPv6ClientCountsByItsSlash64() {
        #expect(ClientKey.of("2001:db8:1:2:aaaa::1") == ClientKey.of("2001:db8:1:2:bbbb::7"))
        #expect(ClientKey.of("2001:db8:1:2::1") != ClientKey.of("2001:db8:1:3::1"))
        #expect(ClientKey.of("::ffff:10.0.0.1") == "10.0.0.1")
        #expect(ClientKey.of("10.0.0.1") == "10.0.0.1")
    }
}
