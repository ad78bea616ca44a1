import Foundation
import MusterTestSupport
import Testing
@testable import MusterDiscovery

/// Long polls, slow clients and floods at once, on loopback, while clusters-to-be make tokens
/// and register: those must all succeed. Bounded in count (a few hundred requests) and time
/// (every request has its own bound); it asserts what happened, not how fast.
@Suite struct LoadTests {
    @Test func newAndRegistrationsSucceedUnderLongPollsSlowClientsAndFloods() async throws {
        let fixture = try await ServiceTests.Fixture.start {
            $0.waitTimeout = 3
            $0.maxLongPolls = 24
            $0.maxConnections = 256
            $0.headerTimeout = 2
            $0.bodyTimeout = 2
            $0.idleTimeout = 5
            // Every client here is 127.0.0.1: the per-client quotas (QuotaTests) stay out of the way.
            $0.maxConnectionsPerClient = 256
            $0.maxLongPollsPerClient = 256
        }
        let service = fixture.service
        let port = service.port
        // Tokens the noisy clients aim at (size 3: at most 10 polls and 10 member keys each).
        var targets: [String] = []
        for _ in 0..<4 { targets.append(try await fixture.newToken(size: 3).url) }
        let noisyTargets = targets
        var pairs = ""
        var index = 0
        while pairs.utf8.count < 64 * 1024 - 16 { pairs += "p\(index)=&"; index += 1 }
        let pairBody = Data(pairs.utf8)
        let hugeBody = Data(("value=" + String(repeating: "a", count: 70 * 1024)).utf8)

        struct Outcome: Sendable {
            var polls: [Int] = []
            var floods: [Int] = []
            var slowCut = 0
            var slowKept = 0
            var tokens: [Int] = []
            var registrations: [Int] = []
            var listings: [Int] = []
        }
        enum Part: Sendable {
            case poll(Int), flood(Int), slow(Bool), token(Int), registration(Int), listing(Int)
        }

        let parts = await withTaskGroup(of: [Part].self) { group in
            // 48 long polls over 4 tokens: more than the caps allow.
            for poll in 0..<48 {
                group.addTask {
                    let url = noisyTargets[poll % 4]
                    let answer = try? await HTTPProbe.send("GET", url + "?wait=true&recursive=true&waitIndex=100000", timeout: 10)
                    return [.poll(answer?.status ?? 0)]
                }
            }
            // 40 slow clients: half a head each, never finished.
            for _ in 0..<40 {
                group.addTask {
                    guard let connection = try? await RawConnection.open(port: port) else { return [.slow(false)] }
                    try? await connection.send("PUT /\(noisyTargets[0].split(separator: "/").last ?? "")/x HTTP/1.1\r\nHost: x\r\nContent-Len")
                    let cut = await connection.waitClosed(seconds: 10)
                    await connection.close()
                    return [.slow(cut)]
                }
            }
            // Floods: quadratic-looking forms and oversized bodies, 20 at a time.
            group.addTask {
                var statuses: [Part] = []
                for wave in 0..<3 {
                    await withTaskGroup(of: Int.self) { inner in
                        for member in 0..<20 {
                            inner.addTask {
                                let url = noisyTargets[member % 4] + "/w\(wave)m\(member)"
                                let body = member % 2 == 0 ? pairBody : hugeBody
                                return (try? await HTTPProbe.send("PUT", url, body: body, timeout: 10))?.status ?? 0
                            }
                        }
                        for await status in inner { statuses.append(.flood(status)) }
                    }
                }
                return statuses
            }
            // The real work: five clusters of three get a token and register.
            for cluster in 0..<5 {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(200 * cluster + 300))
                    var results: [Part] = []
                    guard let made = try? await HTTPProbe.send("GET", service.url + "/new?size=3", timeout: 10) else { return [.token(0)] }
                    results.append(.token(made.status))
                    guard made.status == 200 else { return results }
                    for member in 0..<3 {
                        let put = try? await HTTPProbe.send("PUT", made.text + "/c\(cluster)m\(member)?prevExist=false",
                                                            form: "value=m\(member)%3Dhttp%3A%2F%2F127.0.0.1%3A\(2380 + member)", timeout: 10)
                        results.append(.registration(put?.status ?? 0))
                    }
                    let listing = try? await HTTPProbe.send("GET", made.text, timeout: 10)
                    results.append(.listing(listing?.childNames.count ?? -1))
                    return results
                }
            }
            var all: [Part] = []
            for await some in group { all += some }
            return all
        }

        var outcome = Outcome()
        for part in parts {
            switch part {
            case .poll(let status): outcome.polls.append(status)
            case .flood(let status): outcome.floods.append(status)
            case .slow(let cut): if cut { outcome.slowCut += 1 } else { outcome.slowKept += 1 }
            case .token(let status): outcome.tokens.append(status)
            case .registration(let status): outcome.registrations.append(status)
            case .listing(let count): outcome.listings.append(count)
            }
        }
        #expect(outcome.tokens == [200, 200, 200, 200, 200], "\(outcome.tokens)")
        #expect(outcome.registrations.count == 15 && outcome.registrations.allSatisfy { $0 == 201 }, "\(outcome.registrations)")
        #expect(outcome.listings == [3, 3, 3, 3, 3], "\(outcome.listings)")
        // Long polls: each waited its bound (an empty 200) or was refused by a cap.
        #expect(outcome.polls.allSatisfy { [200, 429, 503].contains($0) }, "\(outcome.polls)")
        #expect(outcome.polls.filter { $0 == 200 }.count <= 24, "at most the cap waited: \(outcome.polls)")
        #expect(outcome.polls.contains(429) || outcome.polls.contains(503), "the caps refused some: \(outcome.polls)")
        #expect(outcome.floods.count == 60 && outcome.floods.allSatisfy { [400, 413].contains($0) }, "\(outcome.floods)")
        #expect(outcome.slowCut == 40, "slow clients cut: \(outcome.slowCut), kept: \(outcome.slowKept)")
        // Afterwards: nothing left waiting, and the noisy tokens hold no flood keys.
        if let server = service.server { #expect(server.longPolls.count == 0) }
        for url in noisyTargets {
            #expect(try await HTTPProbe.send("GET", url).childNames.isEmpty, "\(url)")
        }
        #expect(try await HTTPProbe.send("GET", service.url + "/health").status == 200)
        await fixture.finish()
    }
}
