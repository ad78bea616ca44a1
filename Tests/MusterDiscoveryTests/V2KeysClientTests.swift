import Foundation
import MusterEtcd
import MusterTestSupport
import Testing

/// MusterEtcd's v2 keys client against a real etcd 3.4 (`--enable-v2`) on loopback.
@Suite struct V2KeysClientTests {
    @Test func getPutWaitDeleteAndTTL() async throws {
        let root = try TemporaryDirectory.create(prefix: "muster-v2")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let etcd = try await LoopbackEtcd.startVerified(root: root)
        defer { etcd.stop() }
        let client = try V2KeysClient(baseURL: etcd.clientURL + "/", timeout: 5, maxConnections: 4)

        let created = try await client.put("/t/a b", value: "x=http://h:1", prevExist: false)
        #expect(created.status == 201, "\(created.text)")
        #expect(created.nodeValue == "x=http://h:1")
        let again = try await client.put("/t/a b", value: "y", prevExist: false)
        #expect(again.status == 412 && again.errorCode == 105, "\(again.text)")
        let read = try await client.get("/t/a b")
        #expect(read.status == 200 && read.nodeValue == "x=http://h:1")
        #expect(read.etcdHeaders.contains { $0.name == "X-Etcd-Index" })
        #expect(try await client.get("/t").childNames == ["a b"])
        #expect(try await client.get("/nothing").isKeyNotFound)

        // A wait that sees nothing ends at its bound with nil; one that sees a change returns it.
        let index = try #require(read.etcdHeaders.first { $0.name == "X-Etcd-Index" }.flatMap { UInt64($0.value) })
        #expect(try await client.wait("/t", waitIndex: index + 1, recursive: true, timeout: 0.5) == nil)
        let waiter = Task { try await client.wait("/t", waitIndex: index + 1, recursive: true, timeout: 10) }
        try await Self.waitForWatchers(1, etcd: etcd.clientURL)
        _ = try await client.put("/t/b", value: "2")
        let event = try #require(try await waiter.value)
        #expect(event.status == 200 && event.nodeValue == "2", "\(event.text)")

        // Long polls hold connections; the pool's others still serve short calls meanwhile (a
        // call queued behind them would return only once one of them ended).
        let ended = PortBox()
        let waits = (0..<3).map { _ in Task { _ = try? await client.wait("/t", waitIndex: index + 1000, timeout: 60); ended.set(1) } }
        try await Self.waitForWatchers(3, etcd: etcd.clientURL)
        #expect(try await client.get("/t/b").nodeValue == "2")
        #expect(ended.value == nil, "a short call queued behind long polls")
        for wait in waits { wait.cancel() }

        // TTL: the key goes away by itself.
        let expiring = try await client.put("/t/ttl", value: "v", ttl: 1)
        #expect(expiring.status == 201, "\(expiring.text)")
        let deadline = Date().addingTimeInterval(10)
        var gone = false
        while !gone && Date() < deadline {
            gone = try await client.get("/t/ttl").isKeyNotFound
            if !gone { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(gone, "a key with ttl 1 was still there after 10 s")

        #expect(try await client.delete("/t", recursive: true).status == 200)
        #expect(try await client.get("/t").isKeyNotFound)
        await client.shutdown()
    }

    /// Waits (bounded, 10 s) until the backing etcd counts `count` v2 watchers
    /// (`/v2/stats/store`): the long polls are then really waiting.
    static func waitForWatchers(_ count: Int, etcd: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        var seen: Int?
        while ContinuousClock.now < deadline {
            seen = try? await HTTPProbe.send("GET", etcd + "/v2/stats/store", timeout: 2).json?["watchers"] as? Int
            if seen == count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError(description: "etcd counts \(seen.map(String.init) ?? "no") watchers after 10 s, not \(count)")
    }

    @Test func unreachableAndBadURLsAreSaid() async throws {
        #expect(throws: EtcdClientError.self) { try V2KeysClient(baseURL: "ftp://x") }
        let port = try FreePorts.pick(1)[0]
        let client = try V2KeysClient(baseURL: "http://127.0.0.1:\(port)", timeout: 2)
        do {
            _ = try await client.get("/x")
            Issue.record("a dead port answered")
        } catch {
            #expect(error.kind == .transport && error.message.contains("refused"), "\(error)")
        }
        await client.shutdown()
    }
}
