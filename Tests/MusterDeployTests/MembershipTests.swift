import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// Membership after day one: a member the inventory adds joins a formed cluster as a learner,
/// is promoted once in sync, and no acknowledged write is lost while it happens.
@Suite struct MembershipTests {
    /// `pki`: the state's `pki/CLUSTER` of a TLS cluster (its CA and client certificate).
    private func etcdctl(_ hosts: [String], _ arguments: [String], pki: String? = nil) throws -> ProcessResult {
        let scheme = pki == nil ? "http" : "https"
        let endpoints = try hosts.map { "\(scheme)://\(try DeploySandbox.host($0).address):2379" }
        let tls = pki.map { ["--cacert=\($0)/ca.crt", "--cert=\($0)/client.crt", "--key=\($0)/client.key"] } ?? []
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s",
                                     "--command-timeout=5s"] + tls + arguments, environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    private func leaderOf(_ host: String) throws -> Bool {
        let status = try etcdctl([host], ["endpoint", "status", "-w", "json"]).stdoutText
        guard let data = status.data(using: .utf8),
              let entries = try JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let entry = entries.first, let state = entry["Status"] as? [String: Any],
              let header = state["header"] as? [String: Any] else { return false }
        return "\(header["member_id"] ?? "")" == "\(state["leader"] ?? "-")"
    }

    private func setMembers(_ members: String, in builder: PlanBuilder) throws {
        let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #"members: \[[^\]]*\]"#, with: "members: [\(members)]", options: .regularExpression)
        try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
    }

    @Test func aStaticClusterGrowsThroughALearnerAndShrinksWithoutItsLeaderWhileAClientWrites() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            try setMembers("host1, host2", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let founders = try ["host1", "host2"].map { try DeploySandbox.exec($0, "cat /etc/etcd/main/conf.yml") }

            // A writer through the founders for the whole change; every acknowledged key must
            // be readable afterwards.
            let writer = Task.detached { () -> [String] in
                var acknowledged: [String] = []
                for index in 0..<400 {
                    if Task.isCancelled { break }
                    let key = "/grow/\(index)"
                    if (try? etcdctl(["host1", "host2"], ["put", key, "v\(index)"]))?.succeeded == true { acknowledged.append(key) }
                }
                return acknowledged
            }
            try setMembers("host1, host2, host3", in: builder)
            // The dry run lists the steps the run then takes, line for line.
            let plannedGrow = try await up(builder, dryRun: true).lines
            let (grown, grew) = try await up(builder)
            writer.cancel()
            #expect(plannedGrow.steps.map { $0.components(separatedBy: ":")[0] } == ["cluster main, step backup", "cluster main, step join", "cluster main, step health-wait"], "\(plannedGrow.all)")
            #expect(plannedGrow.steps == grew.steps, "dry run: \(plannedGrow.steps)\nrun: \(grew.steps)")
            let acknowledged = await writer.value
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            #expect(grown.hosts.first { $0.host == "host3" }?.started == ["main"], "\(grown.hosts)")
            #expect(grown.hosts.allSatisfy { $0.restarted.isEmpty }, "no founder restarts: \(grown.hosts)")
            // The founders' files are as they formed; the newcomer joined an existing cluster.
            #expect(try ["host1", "host2"].map { try DeploySandbox.exec($0, "cat /etc/etcd/main/conf.yml") } == founders)
            let joined = try DeploySandbox.exec("host3", "cat /etc/etcd/main/conf.yml")
            #expect(joined.contains("initial-cluster-state: existing"), "\(joined)")
            #expect(joined.contains("host3="), "\(joined)")

            let list = try etcdctl(["host1"], ["member", "list", "-w", "json"])
            let members = try JSONSerialization.jsonObject(with: list.stdout) as? [String: Any]
            let entries = members?["members"] as? [[String: Any]] ?? []
            #expect(entries.count == 3, "\(list.stdoutText)")
            #expect(entries.allSatisfy { ($0["isLearner"] as? Bool) != true }, "every member a voter: \(list.stdoutText)")

            #expect(!acknowledged.isEmpty)
            for key in acknowledged {
                let value = try etcdctl(["host3"], ["get", key, "--print-value-only"]).stdoutText
                #expect(value == "v\(key.split(separator: "/").last!)\n", "\(key) lost")
            }
            // Re-run: nothing to do, nobody restarts.
            let again = try await DeploySandbox.up(builder)
            #expect(again.bytesSent == 0 && again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(again.hosts)")

            // Shrink 3 -> 2, removing the leader: refused without --remove-members (nothing
            // changed), then done with it while the client writes.
            let leaderHost = try ["host1", "host2", "host3"].first { host in
                try etcdctl([host], ["endpoint", "status", "-w", "json"]).stdoutText.contains("\"leader\":") &&
                    leaderOf(host)
            }
            let leader = try #require(leaderHost)
            let keep = ["host1", "host2", "host3"].filter { $0 != leader }
            try setMembers(keep.joined(separator: ", "), in: builder)
            let pidsBefore = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            await #expect(throws: DeployError.self) { _ = try await DeploySandbox.up(builder) }
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } == pidsBefore,
                    "a refused removal changed nothing")
            let shrinkWriter = Task.detached { () -> [String] in
                var acknowledged: [String] = []
                for index in 0..<300 {
                    if Task.isCancelled { break }
                    let key = "/shrink/\(index)"
                    if (try? etcdctl(keep, ["put", key, "s\(index)"]))?.succeeded == true { acknowledged.append(key) }
                }
                return acknowledged
            }
            let plannedShrink = try await up(builder, dryRun: true, removeMembers: true).lines
            let (shrunk, shrank) = try await up(builder, removeMembers: true)
            shrinkWriter.cancel()
            #expect(plannedShrink.steps.map { $0.components(separatedBy: ":")[0] } == ["cluster main, step backup", "cluster main, step remove"], "\(plannedShrink.all)")
            #expect(plannedShrink.steps == shrank.steps, "dry run: \(plannedShrink.steps)\nrun: \(shrank.steps)")
            let shrinkAcknowledged = await shrinkWriter.value
            #expect(shrunk.reports.allSatisfy { $0.ok }, "\(shrunk.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec(leader, "cat /run/etcd/main.pid 2>/dev/null; echo gone") == "gone", "the removed member is stopped")
            #expect(try DeploySandbox.exec(leader, "test -d /var/lib/etcd/main/member && echo kept") == "kept", "its data is kept")
            let shrunkList = try etcdctl(keep, ["member", "list"]).stdoutText
            #expect(shrunkList.split(separator: "\n").count == 2, "\(shrunkList)")
            for key in acknowledged + shrinkAcknowledged {
                #expect(try etcdctl(keep, ["get", key, "--print-value-only"]).stdoutText.hasSuffix("\(key.split(separator: "/").last!)\n"), "\(key) lost")
            }
            // 2 -> 1 is what etcd calls unsafe: refused without --force.
            try setMembers(keep[0], in: builder)
            var unsafe = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress(quiet: true))
            unsafe.removeMembers = true
            await #expect(throws: DeployError.self) { _ = try await unsafe.run() }
            #expect(try etcdctl(keep, ["member", "list"]).stdoutText.split(separator: "\n").count == 2)
            try setMembers("host1, host2, host3", in: builder)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func aMemberWhoseDataWasWipedIsReplacedThroughALearner() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            for index in 0..<50 { #expect(try etcdctl(["host1"], ["put", "/replace/\(index)", "r\(index)"]).succeeded) }
            let oldID = try etcdctl(["host1"], ["member", "list"]).stdoutText.split(separator: "\n")
                .first { $0.contains(", host3,") }.map { String($0.split(separator: ",")[0]) }
            // host3 loses its data: its member stopped, the data dir emptied by hand.
            _ = try DeploySandbox.exec("host3", "p=$(cat /run/etcd/main.pid); kill $p; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; rm -rf /var/lib/etcd/main/member")

            let planned = Lines(), said = Lines()
            var dryRun = Replace(builder: { var b = builder; b.cluster = "main"; return b }(), member: "host3",
                                 options: DeploySandbox.options, progress: Progress(observer: { planned.add($0.line) }))
            dryRun.dryRun = true
            #expect(try await dryRun.run() == nil)
            let replace = Replace(builder: { var b = builder; b.cluster = "main"; return b }(), member: "host3",
                                  options: DeploySandbox.options, progress: Progress(observer: { said.add($0.line) }))
            let report = try #require(try await replace.run())
            #expect(report.ok, "\(report.table())")
            #expect(planned.steps.map { $0.components(separatedBy: ":")[0].replacingOccurrences(of: "cluster main, step ", with: "") }
                        == ["backup", "remove", "move-data-aside", "write-files", "join", "health-wait"], "\(planned.all)")
            #expect(planned.steps == said.steps, "dry run: \(planned.steps)\nrun: \(said.steps)")
            let list = try etcdctl(["host1"], ["member", "list"]).stdoutText
            let newID = list.split(separator: "\n").first { $0.contains(", host3,") }.map { String($0.split(separator: ",")[0]) }
            #expect(newID != nil && newID != oldID, "host3 has a new ID: \(list)")
            #expect(!list.contains("true"), "no learner left: \(list)")
            for index in 0..<50 {
                #expect(try etcdctl(["host3"], ["get", "/replace/\(index)", "--print-value-only", "--consistency=s"]).stdoutText == "r\(index)\n")
            }
            // The old data dir is kept beside; a plain `up` and `verify` agree with the change.
            #expect(try DeploySandbox.exec("host3", "ls -d /var/lib/etcd/main.muster-replaced-* | wc -l") == "1")
            let again = try await DeploySandbox.up(builder)
            #expect(again.reports.allSatisfy { $0.ok }, "\(again.reports.map { $0.table() })")
            #expect(again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(again.hosts)")
            try await DeploySandbox.down(builder, wipe: true)
            _ = try DeploySandbox.exec("host3", "rm -rf /var/lib/etcd/main.muster-replaced-*")
        }
    }

    /// What a refused change must leave alone on every host: installed binaries and files (with
    /// their times), the member's pid.
    private func hostListings() throws -> [String] {
        try ["host1", "host2", "host3"].map {
            try DeploySandbox.exec($0, "ls -la --time-style=+%s /opt/muster/bin /etc/etcd/main 2>/dev/null; cat /run/etcd/main.pid 2>/dev/null; true")
        }
    }

    /// The safety rules, each refused before anything is written anywhere, and two newcomers in
    /// one run (each joining with the other in its initial-cluster).
    @Test func unsafeChangesAreRefusedWithNothingChangedAndTwoNewcomersJoinInOneRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            try setMembers("host1", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")

            // A learner of someone else's change is pending: no second one.
            let ghost = try etcdctl(["host1"], ["member", "add", "ghost", "--learner", "--peer-urls=http://127.0.0.1:23800"])
            #expect(ghost.succeeded, "\(ghost.stderrText)")
            // `Member ID added to cluster CID`: an unstarted member has no name yet.
            let ghostID = try #require(ghost.stdoutText.split(separator: " ").dropFirst().first.map(String.init), "\(ghost.stdoutText)")
            try setMembers("host1, host2, host3", in: builder)
            var before = try hostListings()
            do {
                _ = try await DeploySandbox.up(builder)
                Issue.record("a grow with a pending learner was not refused")
            } catch let error as DeployError {
                #expect(error.kind == .refused && error.message.contains("learner \(ghostID) (http://127.0.0.1:23800) is not promoted yet"), "\(error.message)")
            }
            #expect(try hostListings() == before, "a refused grow changed a host")
            #expect(try etcdctl(["host1"], ["member", "remove", ghostID]).succeeded)

            // Two newcomers in one run: 1 -> 3.
            let grown = try await DeploySandbox.up(builder)
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec("host3", "cat /etc/etcd/main/conf.yml").contains("host2="), "host3 joined with host2 in its initial-cluster")

            // A voter that stays is not healthy (stopped by SIGSTOP): no shrink, no replace.
            let stopped = try DeploySandbox.exec("host2", "cat /run/etcd/main.pid")
            _ = try DeploySandbox.exec("host2", "kill -STOP \(stopped)")
            defer { _ = try? DeploySandbox.exec("host2", "kill -CONT \(stopped)") }
            try setMembers("host1, host2", in: builder)
            before = try hostListings()
            var shrink = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress())
            shrink.removeMembers = true
            do {
                _ = try await shrink.run()
                Issue.record("a shrink with an unhealthy voter was not refused")
            } catch let error as DeployError {
                #expect(error.kind == .refused && error.message.contains("member host2 is not healthy"), "\(error.message)")
            }
            try setMembers("host1, host2, host3", in: builder)
            let replace = Replace(builder: { var b = builder; b.cluster = "main"; return b }(), member: "host3",
                                  options: DeploySandbox.options, progress: Progress())
            do {
                _ = try await replace.run()
                Issue.record("a replace with another voter unhealthy was not refused")
            } catch let error as DeployError {
                #expect(error.kind == .refused && error.message.contains("member host2 is not healthy"), "\(error.message)")
            }
            #expect(try hostListings() == before, "a refused change changed a host")
            #expect(try etcdctl(["host1"], ["member", "list"]).stdoutText.split(separator: "\n").count == 3)
            _ = try DeploySandbox.exec("host2", "kill -CONT \(stopped)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A discovery cluster's `size` counts only at formation: once formed, a member the inventory
    /// adds joins through a learner like any other, with no discovery keys.
    @Test func aDiscoveryClusterGrowsPastItsSizeThroughALearner() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.discovery) {
                $0.replacingOccurrences(of: "  disco:\n    members: [host1]\n", with: "  disco:\n    members: [host1]\n    client_port: 3379\n    peer_port: 3380\n")
            }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            #expect(try etcdctl(["host2"], ["put", "/before-grow", "kept"]).succeeded)
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            let grown = text.replacingOccurrences(of: "    members: [host2, host3]\n", with: "    members: [host2, host3, host1]\n")
            #expect(grown != text)
            try grown.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            let joined = try DeploySandbox.exec("host1", "cat /etc/etcd/main/conf.yml")
            #expect(joined.contains("initial-cluster-state: existing") && !joined.contains("discovery"), "\(joined)")
            let list = try etcdctl(["host2"], ["member", "list"]).stdoutText
            #expect(list.split(separator: "\n").count == 3 && !list.contains("true"), "three voters: \(list)")
            #expect(try etcdctl(["host1"], ["get", "/before-grow", "--print-value-only"]).stdoutText == "kept\n")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Moving a member to another host is one inventory edit (one host out, another in) and one
    /// `up --remove-members`: with the source alive, the newcomer joins first, then the source
    /// leaves; every key stays.
    @Test func aMemberMovesToAnotherHostInOneRunWithItsSourceAlive() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            try setMembers("host1, host2", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            for index in 0..<20 { #expect(try etcdctl(["host1"], ["put", "/move/\(index)", "m\(index)"]).succeeded) }
            try setMembers("host1, host3", in: builder)
            let planned = try await up(builder, dryRun: true, removeMembers: true).lines
            let (moved, said) = try await up(builder, removeMembers: true)
            #expect(moved.reports.allSatisfy { $0.ok }, "\(moved.reports.map { $0.table() })")
            // Add first, then remove: the dry run said so, and the run did what it said.
            #expect(planned.steps.map { $0.components(separatedBy: ":")[0] } == ["cluster main, step backup", "cluster main, step join",
                                                                                  "cluster main, step health-wait", "cluster main, step remove"], "\(planned.all)")
            #expect(planned.steps == said.steps, "dry run: \(planned.steps)\nrun: \(said.steps)")
            #expect(moved.hosts.first { $0.host == "host3" }?.started == ["main"], "\(moved.hosts)")
            #expect(moved.hosts.first { $0.host == "host2" }?.stopped == ["main"], "\(moved.hosts)")
            let list = try etcdctl(["host1"], ["member", "list"]).stdoutText
            #expect(list.contains(", host3,") && !list.contains(", host2,") && list.split(separator: "\n").count == 2, "\(list)")
            for index in 0..<20 {
                #expect(try etcdctl(["host3"], ["get", "/move/\(index)", "--print-value-only"]).stdoutText == "m\(index)\n")
            }
            try await DeploySandbox.down(builder, wipe: true)
            _ = try DeploySandbox.exec("host2", "rm -rf /var/lib/etcd/main")
        }
    }

    /// `up`, or `up --dry-run`, of `builder`, with the progress lines it printed.
    func up(_ builder: PlanBuilder, options: RunOptions = DeploySandbox.options, dryRun: Bool = false,
            removeMembers: Bool = false) async throws -> (outcome: BringUp.Outcome, lines: Lines) {
        let lines = Lines()
        var run = DeploySandbox.bringUp(builder: builder, options: options, progress: Progress(observer: { lines.add($0.line) }))
        run.dryRun = dryRun
        run.removeMembers = removeMembers
        return (try await run.run(), lines)
    }

    /// Progress lines of a run, kept for the test to read.
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
        func index(of text: String) -> Int? { all.firstIndex { $0.contains(text) } }
        /// The step lines of a run (`cluster NAME, step NAME: ...`), a dry run's without its `dry run: `.
        var steps: [String] { Self.steps(in: all) }
        static func steps(in lines: [String]) -> [String] {
            lines.compactMap { line in
                guard let start = line.range(of: "cluster ")?.lowerBound, line[start...].contains(", step ") else { return nil }
                return String(line[start...])
            }
        }
    }

    /// A move off a host that is down (powered off): the run goes on without that host, which
    /// only holds the member to remove; the member is removed first, then the newcomer added
    /// (etcd's runtime-reconfiguration guide), with the two voters that stay healthy throughout.
    @Test func aMemberMovesOffAHostThatIsDownRemovedFirstThenTheNewcomerAdded() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, hosts: 4) { $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n") }
            try setMembers("host1, host2, host3", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let pki = try builder.build().state.directory + "/pki/main"
            for index in 0..<20 { #expect(try etcdctl(["host1"], ["put", "/away/\(index)", "a\(index)"], pki: pki).succeeded) }
            try DeploySandbox.powerOff("host3")
            do {
                try setMembers("host1, host2, host4", in: builder)
                // The dry run lists the removal before the newcomer.
                let planned = try await up(builder, dryRun: true, removeMembers: true).lines
                let removeStep = try #require(planned.index(of: "remove host3"), "\(planned.all)")
                let addStep = try #require(planned.index(of: "add learner host4"), "\(planned.all)")
                #expect(removeStep < addStep, "\(planned.all)")
                #expect(try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText.split(separator: "\n").count == 3, "the dry run changed nothing")

                let (moved, said) = try await up(builder, removeMembers: true)
                #expect(moved.reports.allSatisfy { $0.ok }, "\(moved.reports.map { $0.table() })")
                #expect(said.all.contains { $0.contains("host3") && $0.contains("unreachable") }, "the run says it went without host3: \(said.all)")
                let removed = try #require(said.index(of: "member host3"), "\(said.all)")
                let added = try #require(said.index(of: "host4 added as learner"), "\(said.all)")
                #expect(removed < added, "removed first, then added: \(said.all)")
                #expect(!said.steps.isEmpty && planned.steps == said.steps, "dry run: \(planned.steps)\nrun: \(said.steps)")
                #expect(moved.hosts.first { $0.host == "host4" }?.started == ["main"], "\(moved.hosts)")
                let list = try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText
                #expect(list.contains(", host4,") && !list.contains(", host3,") && list.split(separator: "\n").count == 3, "\(list)")
                #expect(!list.contains("true"), "no learner left: \(list)")
                for index in 0..<20 {
                    #expect(try etcdctl(["host4"], ["get", "/away/\(index)", "--print-value-only"], pki: pki).stdoutText == "a\(index)\n")
                }
                let record = try #require(try builder.build().state.clusterRecord("main"))
                #expect(record.removed.map(\.name) == ["host3"] && record.added.map(\.name) == ["host4"], "\(record)")
            } catch {
                try? DeploySandbox.powerOn("host3")
                throw error
            }
            // The old host back (its etcd does not start by itself here): the next up has nothing to do.
            try DeploySandbox.powerOn("host3")
            let again = try await DeploySandbox.up(builder)
            #expect(again.reports.allSatisfy { $0.ok }, "\(again.reports.map { $0.table() })")
            #expect(again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(again.hosts)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Gives `host` a second address (the sandbox's stand-in for a new one: the route still
    /// leaves through the bridge) and lets its sshd listen there too; `undo` takes it away.
    private func addAddress(_ address: String, to host: String, beside current: String) throws {
        _ = try DeploySandbox.exec(host, """
            dev=$(ip -o -4 addr show | awk '$4 ~ /^\(current)\\// {print $2}')
            ip addr add \(address)/24 dev "$dev" && echo "ListenAddress \(address)" >> /etc/ssh/sshd_config && kill -HUP 1
            for i in $(seq 100); do ss -Hltn | grep -q '\(address):22 ' && exit 0; sleep 0.1; done; exit 1
            """)
    }

    private func removeAddress(_ address: String, from host: String) {
        _ = try? DeploySandbox.exec(host, """
            sed -i '/^ListenAddress \(address)$/d' /etc/ssh/sshd_config && kill -HUP 1
            ip addr del \(address)/24 dev $(ip -o -4 addr show | awk '$4 ~ /^\(address)\\// {print $2}')
            """)
    }

    /// A member whose host's address changed in the inventory is updated in place: its peer
    /// URLs through `member update` (same ID, same data), its conf.yml rendered for the new
    /// address and the member restarted alone; the record follows.
    @Test func aMemberWhoseAddressChangedIsUpdatedInPlaceAndRestarted() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static) { $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n") }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let pki = try builder.build().state.directory + "/pki/main"
            for index in 0..<20 { #expect(try etcdctl(["host1"], ["put", "/addr/\(index)", "d\(index)"], pki: pki).succeeded) }
            let before = try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText
            let id = try #require(before.split(separator: "\n").first { $0.contains(", host2,") }.map { String($0.split(separator: ",")[0]) })
            let old = try DeploySandbox.host("host2").address
            let parts = old.split(separator: ".")
            let new = (parts.dropLast() + ["\(Int(parts.last!)! + 100)"]).joined(separator: ".")
            try addAddress(new, to: "host2", beside: old)
            do {
                let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
                let edited = text.replacingOccurrences(of: "host2: { address: \(old) }", with: "host2: { address: \(new) }")
                #expect(edited != text)
                try edited.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
                var options = DeploySandbox.options
                options.acceptNewHostKeys = true
                // A new address together with a removal: one change at a time, refused before any host.
                try setMembers("host1, host2", in: builder)
                var both = DeploySandbox.bringUp(builder: builder, options: options, progress: Progress(quiet: true))
                both.removeMembers = true
                do {
                    _ = try await both.run()
                    Issue.record("a new address together with a removal was not refused")
                } catch let error as DeployError {
                    #expect(error.kind == .refused && error.message.contains("one membership change at a time"), "\(error.message)")
                }
                try setMembers("host1, host2, host3", in: builder)

                let planned = try await up(builder, options: options, dryRun: true).lines
                #expect(planned.index(of: "update host2 peer URLs https://\(old):2380 -> https://\(new):2380") != nil, "\(planned.all)")
                #expect(try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText == before, "the dry run changed nothing")

                // Cut after etcd took the new peer URL, before host2 restarted on it: the next run
                // finds the URL updated already and only restarts.
                let cut = try MusterCLI.run(["up", builder.inventoryPath, "--accept-new-host-keys"], failpoint: "readdress.after-update")
                #expect(!cut.succeeded && cut.stderrText.contains("failpoint readdress.after-update"), "\(cut.stderrText)")
                #expect(planned.steps.map { $0.components(separatedBy: ":")[0] } == ["cluster main, step backup", "cluster main, step readdress"], "\(planned.all)")
                #expect(Lines.steps(in: cut.stderrText.components(separatedBy: "\n")) == planned.steps, "the cut run took the steps the dry run listed, up to the cut: \(cut.stderrText)")
                #expect(try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText.contains("https://\(new):2380"),
                        "the cut run updated the peer URL before it died")

                let (moved, resumed) = try await up(builder, options: options)
                #expect(moved.reports.allSatisfy { $0.ok }, "\(moved.reports.map { $0.table() })")
                #expect(resumed.all.contains { $0.contains("peer URLs of host2 are https://\(new):2380 already") }, "\(resumed.all)")
                #expect(resumed.steps == planned.steps, "dry run: \(planned.steps)\nrun: \(resumed.steps)")
                #expect(moved.hosts.first { $0.host == "host2" }?.restarted == ["main"], "\(moved.hosts)")
                #expect(moved.hosts.filter { $0.host != "host2" }.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "\(moved.hosts)")
                let after = try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText
                let row = try #require(after.split(separator: "\n").first { $0.contains(", host2,") }.map(String.init), "\(after)")
                #expect(row.hasPrefix(id + ",") && row.contains("https://\(new):2380") && !row.contains(old + ":"), "same ID, new peer URL: \(after)")
                let config = try DeploySandbox.exec("host2", "cat /etc/etcd/main/conf.yml")
                #expect(config.contains("listen-peer-urls: https://\(new):2380"), "\(config)")
                let endpoint = "https://\(new):2379"
                for index in 0..<20 {
                    let read = try LocalProcess.run(["etcdctl", "--endpoints=\(endpoint)", "--dial-timeout=3s", "--command-timeout=5s",
                                                     "--cacert=\(pki)/ca.crt", "--cert=\(pki)/client.crt", "--key=\(pki)/client.key",
                                                     "get", "/addr/\(index)", "--print-value-only"], environment: ["ETCDCTL_API": "3"], timeout: 30)
                    #expect(read.stdoutText == "d\(index)\n", "\(read.stderrText)")
                }
                let record = try #require(try builder.build().state.clusterRecord("main"))
                #expect(record.members.first { $0.name == "host2" }?.peerURLs == ["https://\(new):2380"], "\(record)")
                #expect(record.founders.first { $0.name == "host2" }?.peerURLs == ["https://\(old):2380"], "the founding stays as it formed")

                let again = try await DeploySandbox.bringUp(builder: builder, options: options, progress: Progress()).run()
                #expect(again.reports.allSatisfy { $0.ok }, "\(again.reports.map { $0.table() })")
                #expect(again.hosts.allSatisfy { $0.restarted.isEmpty && $0.started.isEmpty }, "nothing more to do: \(again.hosts)")

                // A stopped member's address changes back: its peer URL is updated through the
                // others, then it starts on the address, with its data.
                _ = try DeploySandbox.exec("host2", "kill -9 $(cat /run/etcd/main.pid)")
                try edited.replacingOccurrences(of: "host2: { address: \(new) }", with: "host2: { address: \(old) }")
                    .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
                let returned = Lines()
                let back = try await DeploySandbox.bringUp(builder: builder, options: options, progress: Progress(observer: { returned.add($0.line) })).run()
                #expect(back.reports.allSatisfy { $0.ok }, "\(back.reports.map { $0.table() })")
                #expect(returned.all.contains { $0.contains("host2 is not running; it starts on its new address") }, "\(returned.all)")
                #expect(back.hosts.first { $0.host == "host2" }?.started == ["main"], "\(back.hosts)")
                let list = try etcdctl(["host1"], ["member", "list"], pki: pki).stdoutText
                let returnedRow = try #require(list.split(separator: "\n").first { $0.contains(", host2,") }.map(String.init), "\(list)")
                #expect(returnedRow.hasPrefix(id + ",") && returnedRow.contains("https://\(old):2380"), "same ID, the old peer URL again: \(list)")
                #expect(try etcdctl(["host2"], ["get", "/addr/19", "--print-value-only"], pki: pki).stdoutText == "d19\n")
                var down = TearDown(builder: builder, options: options, progress: Progress(quiet: true))
                down.wipeData = true
                try await down.run()
            } catch {
                removeAddress(new, from: "host2")
                throw error
            }
            removeAddress(new, from: "host2")
        }
    }

    /// A DNS SRV cluster (TLS on: etcd 3.4 reads only `_etcd-server-ssl`) grows through a
    /// learner: the newcomer's SRV and host records are in dnsmasq, and resolve on every member,
    /// before it starts.
    @Test func aDNSSRVClusterGrowsWithTheNewcomersRecordsServedBeforeItStarts() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.dns) {
                $0.replacingOccurrences(of: "  domain: ", with: "  configure_resolvers: true\n  domain: ")
            }
            #expect(try String(contentsOfFile: builder.inventoryPath, encoding: .utf8).contains("tls: true"))
            try setMembers("host1, host2", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let fqdn = try DeploySandbox.host("host3").fqdn
            let conf = "/etc/dnsmasq.d/muster-main.conf"
            #expect(!(try DeploySandbox.exec("host3", "cat \(conf)")).contains(fqdn), "host3 has no records before it joins")

            try setMembers("host1, host2, host3", in: builder)
            let said = Lines()
            let grown = try await DeploySandbox.up(builder, progress: Progress(observer: { said.add($0.line) }))
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            let served = try DeploySandbox.exec("host3", "cat \(conf)")
            #expect(served.contains("srv-host=_etcd-server-ssl._tcp.") && served.contains(",\(fqdn),2380"), "\(served)")
            #expect(served.contains("host-record=\(fqdn),\(try DeploySandbox.host("host3").address)"), "\(served)")
            #expect(try DeploySandbox.exec("host1", "getent ahostsv4 \(fqdn) | awk 'NR==1 {print $1}'") == (try DeploySandbox.host("host3").address))
            let resolved = try #require(said.index(of: "every member resolves"), "\(said.all)")
            let learner = try #require(said.index(of: "host3 added as learner"), "\(said.all)")
            #expect(resolved < learner, "records served and resolved before the learner is added and started: \(said.all)")
            let rows = grown.reports.first?.members ?? []
            #expect(rows.count == 3 && rows.allSatisfy { !$0.isLearner }, "\(rows)")
            let joined = try DeploySandbox.exec("host3", "cat /etc/etcd/main/conf.yml")
            #expect(joined.contains("initial-cluster-state: existing") && !joined.contains("discovery-srv"), "\(joined)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// 3 -> 5 -> 3 on five hosts with a client writing throughout, the leader among the two
    /// removed: every acknowledged write is readable afterwards, and the writer got writes
    /// through during each change.
    @Test func threeToFiveToThreeWithTheLeaderRemovedWhileAClientWrites() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, hosts: 5)
            try setMembers("host1, host2, host3", in: builder)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            func writer(_ prefix: String, through hosts: [String]) -> Task<[String], Never> {
                Task.detached {
                    var acknowledged: [String] = []
                    for index in 0..<2000 {
                        if Task.isCancelled { break }
                        let key = "/\(prefix)/\(index)"
                        if (try? etcdctl(hosts, ["put", key, "\(prefix)\(index)"]))?.succeeded == true { acknowledged.append(key) }
                    }
                    return acknowledged
                }
            }
            let growing = writer("five", through: ["host1", "host2", "host3"])
            try setMembers("host1, host2, host3, host4, host5", in: builder)
            let grown = try await DeploySandbox.up(builder)
            growing.cancel()
            let grownKeys = await growing.value
            #expect(grown.reports.allSatisfy { $0.ok }, "\(grown.reports.map { $0.table() })")
            let five = try etcdctl(["host1"], ["member", "list"]).stdoutText
            #expect(five.split(separator: "\n").count == 5 && !five.contains("true"), "five voters: \(five)")
            #expect(!grownKeys.isEmpty)

            let all = ["host1", "host2", "host3", "host4", "host5"]
            let leader = try #require(try all.first { try leaderOf($0) })
            let removed = [leader, all.first { $0 != leader }!]
            let keep = all.filter { !removed.contains($0) }
            let shrinking = writer("three", through: keep)
            try setMembers(keep.joined(separator: ", "), in: builder)
            var shrink = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress())
            shrink.removeMembers = true
            let shrunk = try await shrink.run()
            shrinking.cancel()
            let shrunkKeys = await shrinking.value
            #expect(shrunk.reports.allSatisfy { $0.ok }, "\(shrunk.reports.map { $0.table() })")
            let three = try etcdctl(keep, ["member", "list"]).stdoutText
            #expect(three.split(separator: "\n").count == 3 && removed.allSatisfy { !three.contains(", \($0),") }, "\(three)")
            #expect(!shrunkKeys.isEmpty)
            for host in removed {
                #expect(try DeploySandbox.exec(host, "cat /run/etcd/main.pid 2>/dev/null; echo gone") == "gone", "\(host) stopped")
            }
            for key in grownKeys + shrunkKeys {
                let value = try etcdctl(keep, ["get", key, "--print-value-only"]).stdoutText
                #expect(value.hasSuffix("\(key.split(separator: "/").last!)\n") && !value.isEmpty, "\(key) lost")
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
