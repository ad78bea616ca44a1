import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterWorkspace
import MusterSandbox

/// muster killed (SIGKILL, through `MUSTER_FAILPOINT`) at named phases of `up`: the next `up`
/// converges to a verified cluster and no key written before is lost.
@Suite struct FailpointTests {
    /// The built CLI, killed at `phase`; returns what it printed.
    private func upKilled(at phase: String, _ builder: PlanBuilder, expectStatus: Int32? = nil) throws -> String {
        let result = try MusterCLI.up(builder, failpoint: phase)
        #expect(!result.succeeded, "up should have been killed at \(phase)")
        if let expectStatus { #expect(result.status == expectStatus, "\(result.stderrText)") }
        #expect(result.stderrText.contains("failpoint \(phase.split(separator: "@")[0].split(separator: ":")[0])"), "\(result.stderrText)")
        return result.stderrText
    }

    private func etcdctl(_ arguments: [String]) throws -> ProcessResult {
        let endpoints = try ["host1", "host2", "host3"].map { "http://\(try DeploySandbox.host($0).address):2379" }
        return try LocalProcess.run(["etcdctl", "--endpoints=\(endpoints.joined(separator: ","))", "--dial-timeout=3s"] + arguments,
                                    environment: ["ETCDCTL_API": "3"], timeout: 30)
    }

    @Test func upKilledBetweenMemberStartsAndDuringARollingRestartConvergesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            _ = try upKilled(at: "up.between-member-starts@1", builder)
            let resumed = try await DeploySandbox.up(builder)
            #expect(resumed.reports.allSatisfy { $0.ok }, "\(resumed.reports.map { $0.table() })")

            #expect(try etcdctl(["put", "/written-before", "kept"]).succeeded)
            // A config change etcd applies at restart: every member is restarted, one at a time;
            // the run dies after the first.
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "    members: [host1, host2, host3]\n", with: "    members: [host1, host2, host3]\n    etcd: { snapshot-count: 5000 }\n")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            _ = try upKilled(at: "up.rolling-restart@2", builder)
            // The two members not yet restarted serve healthy on the old conf.yml: verify over
            // SSH names them.
            let behind = try await Verification.run(workspace: try await builder.load(lock: false), options: DeploySandbox.options,
                                                    viaSSH: true, progress: Progress(quiet: true))
            let check = behind.first?.check(named: "config-current")
            #expect(check?.ok == false && check?.detail.contains("runs on the old ones") == true, "\(String(describing: check))")
            #expect(behind.first?.checks.filter(\.failed).map(\.name) == ["config-current"], "\(behind.map { $0.table() })")
            let finished = try await DeploySandbox.up(builder)
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            #expect(finished.hosts.flatMap(\.restarted).count == 2, "the two members not yet restarted are, the first is not again: \(finished.hosts)")
            #expect(try etcdctl(["get", "/written-before", "--print-value-only"]).stdoutText == "kept\n")
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "grep -c 'snapshot-count' /etc/etcd/main/conf.yml") == "1")
            }
            let current = try await Verification.run(workspace: try await builder.load(lock: false), options: DeploySandbox.options,
                                                     viaSSH: true, progress: Progress(quiet: true))
            #expect(current.allSatisfy { $0.ok } && current.first?.check(named: "config-current")?.ok == true, "\(current.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// SIGKILL after preflight and during the binary transfer of a first bring-up, then, on a
    /// running cluster with a key written, during the transfer to a host that lost its member and
    /// binary and in the health wait after that member started: each next `up` converges, the
    /// binary arrives whole and the key is kept.
    @Test func upKilledAfterPreflightDuringTheTransferAndInTheHealthWaitConvergesAndKeepsKeys() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            for host in ["host1", "host2", "host3"] { _ = try DeploySandbox.exec(host, "rm -rf /opt/muster") }
            _ = try upKilled(at: "up.after-preflight", builder)
            #expect(try DeploySandbox.exec("host1", "ls /opt/muster/bin 2>/dev/null; pgrep -c etcd || true") == "0",
                    "killed after preflight: nothing written, nothing started")
            _ = try upKilled(at: "up.during-transfer", builder)
            let first = try await DeploySandbox.up(builder)
            #expect(first.reports.allSatisfy { $0.ok }, "\(first.reports.map { $0.table() })")

            #expect(try etcdctl(["put", "/written-before", "kept"]).succeeded)
            // host2 loses its member and its binary: the next run ships it again and starts it.
            _ = try DeploySandbox.exec("host2", "kill -9 $(cat /run/etcd/main.pid); rm -rf /opt/muster")
            _ = try upKilled(at: "up.during-transfer", builder)
            _ = try upKilled(at: "up.health-wait", builder)
            let healed = try await DeploySandbox.up(builder)
            #expect(healed.reports.allSatisfy { $0.ok }, "\(healed.reports.map { $0.table() })")
            let expected = try Digest.sha256Hex(fileAt: "/usr/bin/etcd")
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "sha256sum /opt/muster/bin/etcd-3.4.23 | cut -c1-64") == expected, "\(host)")
            }
            #expect(try etcdctl(["get", "/written-before", "--print-value-only"]).stdoutText == "kept\n")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// Ctrl-C after preflight: the step in flight ends, the run stops at the next boundary with
    /// exit 130 and says how to finish; SIGTERM the same with 143; the next `up` converges.
    @Test func sigintAndSigtermStopAtTheNextStepAndTheNextUpFinishes() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let interrupted = try upKilled(at: "up.after-preflight:int", builder, expectStatus: 130)
            #expect(interrupted.contains("stopped before"), "\(interrupted)")
            let terminated = try upKilled(at: "up.during-transfer:term", builder, expectStatus: 143)
            #expect(terminated.contains("SIGTERM"), "\(terminated)")
            let finished = try await DeploySandbox.up(builder)
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A grow cut after the learner was added (before it started): the next `up` finds it in the
    /// member list, starts it and promotes it instead of adding a second one.
    @Test func aGrowCutAfterTheLearnerWasAddedFinishesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1, host2]")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            _ = try await DeploySandbox.up(builder)
            #expect(try etcdctl(["put", "/before-grow", "kept"]).succeeded)
            try text.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            // Every step of a run is a boundary by construction: Ctrl-C just before the join
            // stops there, with nothing added.
            let interrupted = try upKilled(at: "up.join:int", builder, expectStatus: 130)
            #expect(interrupted.contains("stopped before up.join"), "\(interrupted)")
            #expect(try etcdctl(["member", "list"]).stdoutText.split(separator: "\n").count == 2, "nothing added before the join step")
            _ = try upKilled(at: "grow.after-add", builder)
            let learners = try etcdctl(["member", "list"]).stdoutText
            #expect(learners.contains("true"), "the cut run left an added learner: \(learners)")
            let finished = try await DeploySandbox.up(builder)
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            let list = try etcdctl(["member", "list"]).stdoutText
            #expect(list.split(separator: "\n").count == 3 && !list.contains("true"), "three voters, no learner: \(list)")
            #expect(try etcdctl(["get", "/before-grow", "--print-value-only"]).stdoutText == "kept\n")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// A shrink cut after `member remove` (the member out of the cluster, not yet stopped and
    /// disabled on its host): the next `up --remove-members` finds it removed and finishes.
    @Test func aShrinkCutAfterTheRemovalFinishesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            #expect(try etcdctl(["put", "/before-shrink", "kept"]).succeeded)
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            try text.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1, host2]")
                .write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let cut = try MusterCLI.run(["up", builder.inventoryPath, "--remove-members"], failpoint: "shrink.after-remove")
            #expect(!cut.succeeded && cut.stderrText.contains("failpoint shrink.after-remove"), "\(cut.stderrText)")
            #expect(try etcdctl(["member", "list"]).stdoutText.split(separator: "\n").count == 2, "removed before the cut")

            var finish = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress())
            finish.removeMembers = true
            let finished = try await finish.run()
            #expect(finished.reports.allSatisfy { $0.ok }, "\(finished.reports.map { $0.table() })")
            #expect(try DeploySandbox.exec("host3", "cat /run/etcd/main.pid 2>/dev/null || echo stopped") == "stopped")
            #expect(try builder.build().state.clusterRecord("main")?.removed.map(\.name) == ["host3"])
            #expect(try etcdctl(["get", "/before-shrink", "--print-value-only"]).stdoutText == "kept\n")
            try text.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// muster killed at each step of a grow (learner added, learner started, promoted) and of a
    /// shrink (leadership moved, member removed, member stopped), on one formed cluster that
    /// grows 2 -> 3 and shrinks back once per pair of points: each time the next `up` converges
    /// to the inventory, `verify` passes and no key is lost.
    @Test(.timeLimit(.minutes(10)))
    func upKilledAtEachStepOfAGrowAndOfAShrinkConvergesOnTheNextRun() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let text = try String(contentsOfFile: builder.inventoryPath, encoding: .utf8)
            let two = text.replacingOccurrences(of: "members: [host1, host2, host3]", with: "members: [host1, host2]")
            try two.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let pairs = [("grow.after-add", "shrink.after-leader-move"), ("grow.after-start", "shrink.after-remove"),
                         ("grow.after-promote", "shrink.after-stop")]
            for (round, (growPoint, shrinkPoint)) in pairs.enumerated() {
                #expect(try etcdctl(["put", "/round/\(round)", "r\(round)"]).succeeded)
                // Grow 2 -> 3, cut at growPoint.
                try text.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
                _ = try upKilled(at: growPoint, builder)
                let cut = try etcdctl(["member", "list"]).stdoutText
                #expect(cut.split(separator: "\n").count == 3, "\(growPoint): host3 was added before the cut: \(cut)")
                #expect(cut.contains("true") == (growPoint != "grow.after-promote"), "\(growPoint): learner until promoted: \(cut)")
                let grown = try await DeploySandbox.up(builder)
                #expect(grown.reports.allSatisfy { $0.ok }, "\(growPoint): \(grown.reports.map { $0.table() })")
                let voters = try etcdctl(["member", "list"]).stdoutText
                #expect(voters.split(separator: "\n").count == 3 && !voters.contains("true"), "\(growPoint): three voters: \(voters)")
                #expect(try builder.build().state.clusterRecord("main")?.members.map(\.name).sorted() == ["host1", "host2", "host3"])
                let verified = try MusterCLI.run(["verify", builder.inventoryPath])
                #expect(verified.succeeded, "\(growPoint): \(verified.stdoutText)\(verified.stderrText)")

                // Shrink 3 -> 2 with host3 leading (so leadership has to move), cut at shrinkPoint.
                let host3ID = try #require(voters.split(separator: "\n").first { $0.contains(", host3,") }.map { String($0.split(separator: ",")[0]) })
                let moved = try etcdctl(["move-leader", host3ID])
                #expect(moved.succeeded || moved.stderrText.contains("already leader"), "\(moved.stderrText)")
                try two.write(toFile: builder.inventoryPath, atomically: true, encoding: .utf8)
                let shrink = try MusterCLI.run(["up", builder.inventoryPath, "--remove-members", "--wipe-data"], failpoint: shrinkPoint)
                #expect(!shrink.succeeded && shrink.stderrText.contains("failpoint \(shrinkPoint)"), "\(shrink.stderrText)")
                let left = try etcdctl(["member", "list"]).stdoutText.split(separator: "\n").count
                #expect(left == (shrinkPoint == "shrink.after-leader-move" ? 3 : 2), "\(shrinkPoint): \(left) members")
                var finish = DeploySandbox.bringUp(builder: builder, options: DeploySandbox.options, progress: Progress())
                finish.removeMembers = true
                finish.wipeRemovedData = true
                let shrunk = try await finish.run()
                #expect(shrunk.reports.allSatisfy { $0.ok }, "\(shrinkPoint): \(shrunk.reports.map { $0.table() })")
                #expect(try etcdctl(["member", "list"]).stdoutText.split(separator: "\n").count == 2)
                #expect(try DeploySandbox.exec("host3", "cat /run/etcd/main.pid 2>/dev/null || echo stopped") == "stopped", "\(shrinkPoint)")
                #expect(try DeploySandbox.exec("host3", "test -e /var/lib/etcd/main && echo kept || echo wiped") == "wiped", "\(shrinkPoint)")
                #expect(try builder.build().state.clusterRecord("main")?.members.map(\.name).sorted() == ["host1", "host2"])
                let again = try MusterCLI.run(["verify", builder.inventoryPath])
                #expect(again.succeeded, "\(shrinkPoint): \(again.stdoutText)\(again.stderrText)")
                for earlier in 0...round {
                    #expect(try etcdctl(["get", "/round/\(earlier)", "--print-value-only"]).stdoutText == "r\(earlier)\n")
                }
            }
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
