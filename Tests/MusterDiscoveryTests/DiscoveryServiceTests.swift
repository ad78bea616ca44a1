import Foundation
import MusterTestSupport
import Testing
@testable import MusterDiscovery

@Suite struct RuleTests {
    @Test func sizes() {
        #expect(DiscoveryRules.parseSize(nil) == 3)
        #expect(DiscoveryRules.parseSize("1") == 1)
        #expect(DiscoveryRules.parseSize("99") == 99)
        for bad in ["0", "abc", "1000", "100", "-1", "", " 3", "3.0", "+3", "0x3", "003"] where bad != "003" {
            #expect(DiscoveryRules.parseSize(bad) == nil, "\(bad)")
        }
    }

    @Test func tokensAndKeys() {
        let token = DiscoveryRules.newToken()
        #expect(token.count == 32 && DiscoveryRules.isValidToken(token))
        #expect(DiscoveryRules.newToken() != token)
        #expect(DiscoveryRules.isValidToken("6f1e3c0a-91b2-4c55-8f21-0d6e5a1b2c3d"))
        for bad in ["new", "health", "abc", "../../x", "0123456789abcdefg", "%2e%2e", String(repeating: "a", count: 65)] {
            #expect(!DiscoveryRules.isValidToken(bad), "\(bad)")
        }
        #expect(DiscoveryRules.isValidMemberKey("170c2709464bed8b"))
        for bad in ["_config", ".hidden", "a/b", "", "a b", String(repeating: "a", count: 65)] {
            #expect(!DiscoveryRules.isValidMemberKey(bad), "\(bad)")
        }
    }

    @Test func forms() throws {
        let pairs = try #require(DiscoveryRules.decodeForm("value=etcd1%3Dhttp%3A%2F%2F10.0.0.1%3A2380&x=a+b"))
        #expect(pairs.map(\.name) == ["value", "x"])
        #expect(pairs[0].value == "etcd1=http://10.0.0.1:2380")
        #expect(pairs[1].value == "a b")
        #expect(DiscoveryRules.decodeForm("value=%zz") == nil)
        #expect(DiscoveryRules.decodeForm("a=1&a=2") == nil)
        #expect(DiscoveryRules.encodeForm([("value", "m1=http://127.0.0.1:2380")]) == "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A2380")
    }
}

/// The service on 127.0.0.1 over a real etcd 3.4 (`--enable-v2`) on loopback ports.
@Suite struct ServiceTests {
    /// A backing etcd and the service in front of it, stopped by `finish()`.
    struct Fixture {
        let root: String
        let etcd: LoopbackEtcd
        let service: ServiceUnderTest

        static func start(configure: (inout DiscoveryServerOptions) -> Void = { _ in }) async throws -> Fixture {
            let root = try TemporaryDirectory.create(prefix: "muster-disco")
            let etcd = try await LoopbackEtcd.startVerified(root: root)
            do {
                let service = try await ServiceUnderTest(etcdURL: etcd.clientURL, configure: configure)
                return Fixture(root: root, etcd: etcd, service: service)
            } catch {
                etcd.stop()
                throw error
            }
        }

        func finish() async {
            await service.stop()
            etcd.stop()
            try? FileManager.default.removeItem(atPath: root)
        }

        func registry(_ path: String) -> String { etcd.clientURL + "/v2/keys/_etcd/registry" + path }

        func newToken(size: Int = 3) async throws -> (url: String, token: String) {
            let answer = try await HTTPProbe.send("GET", service.url + "/new?size=\(size)")
            guard answer.status == 200 else { throw HarnessError(description: "/new: \(answer.status) \(answer.text)") }
            let token = String(answer.text.split(separator: "/").last ?? "")
            return (answer.text, token)
        }
    }

    @Test func newTokenWritesItsSizeInTheBackingEtcd() async throws {
        let fixture = try await Fixture.start()
        let answer = try await HTTPProbe.send("GET", fixture.service.url + "/new?size=3")
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"]?.hasPrefix("text/plain") == true)
        let token = String(answer.text.split(separator: "/").last ?? "")
        #expect(answer.text == fixture.service.url + "/" + token, "the URL names the service as it was asked")
        #expect(token.count == 32 && DiscoveryRules.isValidToken(token))

        let size = try await HTTPProbe.send("GET", fixture.registry("/\(token)/_config/size"))
        #expect(size.status == 200)
        #expect(size.value == "3")
        // Through the service, as etcd's discovery client asks.
        let viaService = try await HTTPProbe.send("GET", answer.text + "/_config/size")
        #expect(viaService.status == 200 && viaService.value == "3")
        #expect(viaService.headers["x-etcd-index"] != nil, "etcd's headers are passed through")

        // Without size: 3. Two tokens are never the same.
        let defaulted = try await fixture.newToken()
        #expect(defaulted.token != token)
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(defaulted.token)/_config/size")).value == "3")
        #expect(fixture.service.logText.contains("GET /new?size=3 -> 200"), "\(fixture.service.logText)")
        // A token is a capability: the log keeps its first 8 characters, never all of it.
        #expect(!fixture.service.logText.contains(token) && fixture.service.logText.contains(token.prefix(8) + "…"),
                "\(fixture.service.logText)")
        await fixture.finish()
    }

    @Test func badSizesGet400() async throws {
        let fixture = try await Fixture.start()
        for bad in ["0", "abc", "1000", "-1", ""] {
            let answer = try await HTTPProbe.send("GET", fixture.service.url + "/new?size=\(bad)")
            #expect(answer.status == 400, "size=\(bad): \(answer.status) \(answer.text)")
            #expect(answer.text.contains("invalid size"), "\(answer.text)")
        }
        let extra = try await HTTPProbe.send("GET", fixture.service.url + "/new?size=3&ttl=5")
        #expect(extra.status == 400)
        // Nothing was made in the backing etcd.
        let listing = try await HTTPProbe.send("GET", fixture.registry(""))
        #expect(listing.status == 404 && listing.errorCode == 100, "\(listing.text)")
        await fixture.finish()
    }

    @Test func baseURLOption() async throws {
        let fixture = try await Fixture.start { $0.baseURL = "https://discovery.example.org/" }
        let made = try await fixture.newToken(size: 5)
        #expect(made.url == "https://discovery.example.org/" + made.token)
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(made.token)/_config/size")).value == "5")
        await fixture.finish()
    }

    @Test func membersRegisterOnceAndListingsHideConfig() async throws {
        let fixture = try await Fixture.start()
        let made = try await fixture.newToken()
        let first = try await HTTPProbe.send("PUT", made.url + "/170c2709464bed8b?prevExist=false",
                                             form: "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A2380")
        #expect(first.status == 201, "\(first.text)")
        #expect(first.value == "m1=http://127.0.0.1:2380")
        // The same member again: etcd's own "key already exists" (etcd's client: found duplicate id).
        let again = try await HTTPProbe.send("PUT", made.url + "/170c2709464bed8b?prevExist=false", form: "value=other")
        #expect(again.status == 412 && again.errorCode == 105, "\(again.text)")

        let listing = try await HTTPProbe.send("GET", made.url)
        #expect(listing.status == 200)
        #expect(listing.childNames == ["170c2709464bed8b"], "\(listing.text)")
        #expect(!listing.text.contains("_config"))
        let recursive = try await HTTPProbe.send("GET", made.url + "?recursive=true&sorted=true&quorum=false")
        #expect(recursive.childNames == ["170c2709464bed8b"])
        // The service's own filter, for any backend that would show hidden keys.
        let shown = Data(#"{"action":"get","node":{"key":"/t","dir":true,"nodes":[{"key":"/t/_config","dir":true},{"key":"/t/a1","value":"x"}]}}"#.utf8)
        let hidden = try #require(DiscoveryServer.hidingHidden(shown))
        #expect(!String(decoding: hidden, as: UTF8.self).contains("_config"))
        #expect(String(decoding: hidden, as: UTF8.self).contains("/t/a1"))

        // Members may be removed (an operator repairing a token).
        let removed = try await HTTPProbe.send("DELETE", made.url + "/170c2709464bed8b")
        #expect(removed.status == 200, "\(removed.text)")
        #expect(try await HTTPProbe.send("GET", made.url).childNames.isEmpty)
        await fixture.finish()
    }

    @Test func unknownAndMalformedRequestsAreRefused() async throws {
        let fixture = try await Fixture.start()
        let url = fixture.service.url
        // A token never made: etcd's `100: Key not found`, and no directory appears.
        let unknown = "0123456789abcdef0123456789abcdef"
        let put = try await HTTPProbe.send("PUT", "\(url)/\(unknown)/abc?prevExist=false", form: "value=m=http://x:1")
        #expect(put.status == 404 && put.errorCode == 100, "\(put.text)")
        #expect(try await HTTPProbe.send("GET", fixture.registry("/\(unknown)")).status == 404)
        #expect(try await HTTPProbe.send("GET", "\(url)/\(unknown)").errorCode == 100)

        let made = try await fixture.newToken()
        for (method, path, form, status) in [
            ("GET", "/not-a-token!", nil, 404),
            ("GET", "/zzzzzzzzzzzz", nil, 404),
            ("PUT", "/\(made.token)/_config/created", "value=1", 403),
            ("PUT", "/\(made.token)/a/b", "value=1", 400),
            ("PUT", "/\(made.token)/abc?ttl=5", "value=1", 400),
            ("PUT", "/\(made.token)/abc?dir=true", "value=1", 400),
            ("GET", "/\(made.token)?stream=true", nil, 400),
            ("GET", "/\(made.token)?wait=maybe", nil, 400),
            ("PUT", "/\(made.token)/abc", "value=1&ttl=5", 400),
            ("PUT", "/\(made.token)/abc", "", 400),
            ("PUT", "/\(made.token)/_config/size", "value=0", 403),
            ("PUT", "/\(made.token)", "value=1", 405),
            ("DELETE", "/\(made.token)", nil, 405),
        ] as [(String, String, String?, Int)] {
            let answer = try await HTTPProbe.send(method, url + path, form: form)
            #expect(answer.status == status, "\(method) \(path): \(answer.status) \(answer.text)")
        }
        // Bodies are bounded.
        let big = Data(("value=" + String(repeating: "a", count: 70 * 1024)).utf8)
        let tooBig = try await HTTPProbe.send("PUT", "\(made.url)/abc?prevExist=false", body: big)
        #expect(tooBig.status == 413, "\(tooBig.status) \(tooBig.text)")
        // A token's size is fixed by /new (the walkthrough's PUT .../_config/size is for a raw
        // etcd backend, not this service): see HardeningTests.configIsWrittenOnlyByNew.
        let resized = try await HTTPProbe.send("PUT", made.url + "/_config/size", form: "value=5")
        #expect(resized.status == 403, "\(resized.text)")
        // Paths never leave the token: traversal and escapes are not keys.
        for path in ["/../x", "/%2e%2e/x", "/a/../../x", "/.hidden", "//x"] {
            let answer = try await HTTPProbe.send("GET", made.url + path)
            #expect(answer.status == 400 || answer.status == 404, "\(path): \(answer.status) \(answer.text)")
        }
        #expect(fixture.service.logText.contains("-> 413"), "\(fixture.service.logText)")
        await fixture.finish()
    }

    @Test func longPollPassesEventsThroughAndIsBounded() async throws {
        let fixture = try await Fixture.start { $0.waitTimeout = 1 }
        let made = try await fixture.newToken()
        let listing = try await HTTPProbe.send("GET", made.url)
        let index = try #require(listing.headers["x-etcd-index"].flatMap(Int.init))

        // Nothing happens: after the bound, an empty 200 (etcd's client asks again).
        // Bounded, not timed: a long poll that hangs fails here instead of at the runner's limit.
        let idleURL = made.url + "?wait=true&recursive=true&waitIndex=\(index + 1)"
        let idle = try await Bounded.run(seconds: 30, what: "the long poll must end at its bound, not hang") {
            try await HTTPProbe.send("GET", idleURL)
        }
        #expect(idle.status == 200 && idle.body.isEmpty, "\(idle.status) \(idle.text)")

        // A member registers while another waits: the waiter gets etcd's event.
        let url = made.url
        let waiter = Task { try await HTTPProbe.send("GET", url + "?wait=true&recursive=true&waitIndex=\(index + 1)") }
        try await fixture.service.waitUntil("the waiter long-polls") { $0.longPolls.count == 1 }
        _ = try await HTTPProbe.send("PUT", made.url + "/a1?prevExist=false", form: "value=m1=http://127.0.0.1:1")
        let event = try await waiter.value
        #expect(event.status == 200 && event.json?["action"] as? String == "create", "\(event.text)")
        #expect(event.value == "m1=http://127.0.0.1:1")
        await fixture.finish()
    }

    @Test func sweepDropsTokensOlderThanTheMaximumAge() async throws {
        let fixture = try await Fixture.start()
        let old = try await fixture.newToken()
        let fresh = try await fixture.newToken()
        // Age one token by hand: `_config/created` is unix seconds.
        let eightDaysAgo = Int(Date().timeIntervalSince1970) - 8 * 86400
        _ = try await HTTPProbe.send("PUT", fixture.registry("/\(old.token)/_config/created"), form: "value=\(eightDaysAgo)")
        // A token directory the service did not make is left alone.
        _ = try await HTTPProbe.send("PUT", fixture.registry("/aaaaaaaaaaaaaaaa/_config/size"), form: "value=3")

        let result = try await fixture.service.server.registry.sweep(maxAge: 7 * 86400)
        #expect(result.dropped == [old.token])
        #expect(result.kept == 1)
        #expect(result.undated == ["aaaaaaaaaaaaaaaa"])
        #expect(try await HTTPProbe.send("GET", old.url).status == 404)
        #expect(try await HTTPProbe.send("GET", fresh.url + "/_config/size").value == "3")
        await fixture.finish()
    }

    @Test func backendWithoutV2OrDownIsSaidPlainly() async throws {
        let root = try TemporaryDirectory.create(prefix: "muster-disco")
        let port = try FreePorts.pick(1)[0]
        let service = try await ServiceUnderTest(etcdURL: "http://127.0.0.1:\(port)") { $0.backendTimeout = 2 }
        let answer = try await HTTPProbe.send("GET", service.url + "/new")
        #expect(answer.status == 503, "\(answer.text)")
        #expect(answer.text.contains("cannot make a token"))
        let get = try await HTTPProbe.send("GET", service.url + "/0123456789abcdef")
        #expect(get.status == 503 && get.errorCode == 300, "\(get.text)")
        await service.stop()
        #expect(service.logText.contains("warning"), "\(service.logText)")
        try? FileManager.default.removeItem(atPath: root)
    }
}
