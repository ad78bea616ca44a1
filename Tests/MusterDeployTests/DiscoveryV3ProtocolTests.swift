import Foundation
import MusterBasics
@testable import MusterDeploy
import MusterEtcd
import MusterPKI
import MusterPlan
import MusterTestSupport
import MusterWorkspace
import Testing

/// v3 discovery's protocol against a REAL etcd 3.5.16 backend on loopback (its v3 API is what a
/// 3.6/3.7 member's discovery client speaks: Get, Put, Watch). No 3.6 binary exists here, so
/// where members would register themselves, THE TEST writes their keys with etcdctl (a real
/// clientv3 client, 3.5.30), in etcd's own layout (server/etcdserver/api/v3discovery/discovery.go
/// at v3.6.14: `/_etcd/registry/TOKEN/members/` + the member ID as `types.ID.String()`, lowercase
/// hex without padding, = `NAME=PEERURLS`). muster's side runs as `up` and `down` run it:
/// `DiscoveryV3Bootstrap` over a workspace planned from an inventory.
@Suite(.serialized) struct DiscoveryV3ProtocolTests {
    static let etcdctl = "/var/cache/muster/etcd-sid/usr/bin/etcdctl"

    /// A backend, a state dir and an inventory of 3 members on 3.6 (hosts never contacted).
    final class Fixture: @unchecked Sendable {
        let directory: TemporaryDirectory
        let backend: LoopbackEtcd
        let inventoryPath: String
        var state: String { directory.path + "/state" }
        var tls: EtcdMemberTLS?

        init(tlsBackend: Bool = false) async throws {
            try LoopbackEtcd.requireBinary(DeploySandbox.etcd35)
            try LoopbackEtcd.requireBinary(DiscoveryV3ProtocolTests.etcdctl, install: "scripts/setup.sh (etcd 3.5.30)")
            directory = try TemporaryDirectory(prefix: "muster-v3disc")
            let ports = try FreePorts.pick(2)
            let body: String
            if tlsBackend {
                // The backend is cluster 'disco' of the inventory, its certificates from muster's own CA.
                let pki = try ClusterPKI(stateDirectory: directory.path + "/state", cluster: "disco")
                let member = try pki.memberCertificates(member: "d", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
                _ = try pki.clientCertificate()  // muster's own, as `up` issues it with the backend's
                tls = EtcdMemberTLS(caPath: pki.caPath, certPath: member.server.certPath, keyPath: member.server.keyPath,
                                    peerCertPath: member.peer.certPath, peerKeyPath: member.peer.keyPath,
                                    peerCAPath: pki.directory + "/peer-ca.crt")
                body = """
                      d: { address: 127.0.0.1 }
                    clusters:
                      disco: { members: [d], client_port: \(ports[0]), peer_port: \(ports[1]) }
                      main:
                        members: [a, b, c]
                        bootstrap: { discovery: { cluster: disco, size: 3 } }

                    """
            } else {
                body = """
                    clusters:
                      main:
                        members: [a, b, c]
                        tls: false
                        bootstrap: { discovery: { endpoints: ['http://127.0.0.1:\(ports[0])'], size: 3 } }

                    """
            }
            backend = try LoopbackEtcd(binary: DeploySandbox.etcd35, name: "backend", root: directory.path,
                                       ports: (ports[0], ports[1]), tls: tls, enableV2: false)
            inventoryPath = directory.path + "/inventory.yml"
            try Data(("""
                member: { version: 3.6.14 }
                hosts:
                  a: { address: 10.0.0.1 }
                  b: { address: 10.0.0.2 }
                  c: { address: 10.0.0.3 }

                """ + body).utf8).write(to: URL(fileURLWithPath: inventoryPath))
            try await waitHealthy()
        }

        deinit { backend.stop() }

        private func waitHealthy() async throws {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if (try? await etcdctl(["endpoint", "health"]))?.succeeded == true { return }
                guard backend.running else { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw HarnessError(description: "backend etcd not healthy within 30 s:\n\(backend.logTail())")
        }

        /// etcdctl against the backend; over TLS with `credentials` (CA, cert, key), else muster's
        /// client certificate of the backend.
        func etcdctl(_ arguments: [String], credentials: (String, String, String)? = nil) async throws -> ProcessResult {
            var flags = ["--endpoints=\(backend.clientURL)", "--command-timeout=10s"]
            if let tls {
                let (ca, cert, key) = credentials ?? (tls.caPath, state + "/pki/disco/client.crt", state + "/pki/disco/client.key")
                flags += ["--cacert", ca, "--cert", cert, "--key", key]
            }
            return try await LocalProcess.runOffPool([DiscoveryV3ProtocolTests.etcdctl] + flags + arguments,
                                                     environment: ["ETCDCTL_API": "3"], timeout: 30)
        }

        /// Every key under `prefix` with its value, as etcdctl prints them.
        func keys(under prefix: String) async throws -> [String: String] {
            let lines = try await etcdctl(["get", "--prefix", prefix]).stdoutText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var found: [String: String] = [:]
            var index = 0
            while index + 1 < lines.count, !lines[index].isEmpty {
                found[lines[index]] = lines[index + 1]
                index += 2
            }
            return found
        }

        /// As a 3.6 member's v3discovery registerSelf would: written BY THE TEST in its place.
        func registerAsEtcdWould(token: String, name: String, peerURL: String, credentials: (String, String, String)? = nil) async throws {
            let id = EtcdIDs.memberID(peerURLs: [peerURL], token: token)
            let put = try await etcdctl(["put", "/_etcd/registry/\(token)/members/\(String(id, radix: 16))", "\(name)=\(peerURL)"],
                                        credentials: credentials)
            #expect(put.succeeded, "\(put.stderrText)")
        }

        func workspace() throws -> Workspace {
            try PlanBuilder(inventoryPath: inventoryPath, stateDirectory: state,
                            templatesDirectory: repositoryRoot + "/templates").build()
        }
    }

    private func operations(hasData: Bool = false) async throws -> ClusterOperations {
        let facts = hasData ? ["a": HostFacts.parse("main data 1\n")] : [:]
        return ClusterOperations(fleet: try await Fleet.connect([], options: RunOptions(), progress: Progress(quiet: true)),
                                 facts: facts, progress: Progress(quiet: true), options: RunOptions(), tls: [:])
    }

    private var context: BootstrapContext { BootstrapContext(options: RunOptions(), progress: Progress(quiet: true), dryRun: false) }

    private func mode(_ workspace: Workspace) throws -> (ClusterPlan, DiscoveryV3Bootstrap) {
        let main = try #require(workspace.plan.cluster(named: "main"))
        return (main, DiscoveryV3Bootstrap(discovery: try #require(main.discoveryV3)))
    }

    @Test func theSizeKeyIsWrittenAndTheTokensKeysGoOnceTheClusterFormed() async throws {
        let fixture = try await Fixture()
        var workspace = try fixture.workspace()
        let (main, mode) = try mode(workspace)
        let token = mode.discovery.token
        let operations = try await operations()
        // An empty registry: the token stays.
        workspace = try await mode.refresh(main, in: workspace, context: context, operations: operations)
        #expect(workspace.tokens["main"]?.token == token)
        try await mode.beforeStart(main, in: workspace, context: context, operations: operations)
        // etcd's getClusterSize reads `_config/size` under the token and parses it as decimal.
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/") == ["/_etcd/registry/\(token)/_config/size": "3"])
        #expect(try LocalState(directory: fixture.state, create: false).discoveryTokens()["main"] == DiscoveryToken(token: token))
        // The members register (written by the test in place of 3.6 members) ...
        for member in main.members { try await fixture.registerAsEtcdWould(token: token, name: member.name, peerURL: member.peerURL) }
        // ... which makes the token this cluster's own, not a spent one: a rerun keeps it.
        let rerun = try await mode.refresh(main, in: workspace, context: context, operations: operations)
        #expect(rerun.tokens["main"]?.token == token)
        // A neighbour whose name starts like the token keeps its keys.
        #expect(try await fixture.etcdctl(["put", "/_etcd/registry/\(token)x/_config/size", "1"]).succeeded)
        try await mode.afterFormed(main, in: &workspace, context: context)
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/").isEmpty)
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)x/") == ["/_etcd/registry/\(token)x/_config/size": "1"])
        #expect(try LocalState(directory: fixture.state, create: false).discoveryTokens()["main"]?.formed == true)
    }

    @Test func aSpentOrForeignTokenIsReplacedBeforeAnyMemberStarts() async throws {
        let fixture = try await Fixture()
        let workspace = try fixture.workspace()
        let (main, mode) = try mode(workspace)
        let spent = mode.discovery.token
        let operations = try await operations()
        // Another cluster's member under the token (written by the test as etcd would).
        try await fixture.registerAsEtcdWould(token: spent, name: "other", peerURL: "http://10.9.9.9:2380")
        let refreshed = try await mode.refresh(main, in: workspace, context: context, operations: operations)
        let fresh = try #require(refreshed.tokens["main"]?.token)
        #expect(fresh != spent)
        let replanned = try #require(refreshed.plan.cluster(named: "main"))
        #expect(replanned.discoveryV3?.token == fresh)
        #expect(replanned.members.allSatisfy { $0.memberID == EtcdIDs.memberID(peerURLs: [$0.peerURL], token: fresh) })
        // One of this cluster's own keys with another value is somebody else's registration too.
        let first = main.members[0]
        let id = String(try #require(first.memberID), radix: 16)
        let renamed = try await fixture.etcdctl(["put", "/_etcd/registry/\(fresh)/members/\(id)", "impostor=\(first.peerURL)"])
        #expect(renamed.succeeded)
        let (planned, again) = try self.mode(refreshed)
        let twice = try await again.refresh(planned, in: refreshed, context: context, operations: operations)
        #expect(twice.tokens["main"]?.token != fresh)
        // A member with data: the token is not touched (the member ignores discovery).
        let kept = try await mode.refresh(main, in: workspace, context: context, operations: try await self.operations(hasData: true))
        #expect(kept.tokens["main"]?.token == spent)
    }

    @Test func aFormedClustersTokenIsNeverReplacedNorItsKeysWrittenAgain() async throws {
        let fixture = try await Fixture()
        var workspace = try fixture.workspace()
        let (main, mode) = try mode(workspace)
        try await mode.beforeStart(main, in: workspace, context: context, operations: try await operations())
        try await mode.afterFormed(main, in: &workspace, context: context)
        // A member of the formed cluster that starts again: no size key comes back.
        try await mode.beforeStart(main, in: workspace, context: context, operations: try await operations())
        #expect(try await fixture.keys(under: "/_etcd/registry/\(mode.discovery.token)/").isEmpty)
        await #expect(throws: DeployError.self) {
            _ = try await mode.refresh(main, in: workspace, context: context, operations: try await operations())
        }
    }

    @Test func downWithWipeDeletesTheTokensKeysAndForgetsIt() async throws {
        let fixture = try await Fixture()
        let workspace = try fixture.workspace()
        let (main, mode) = try mode(workspace)
        let token = mode.discovery.token
        let operations = try await operations()
        try await mode.beforeStart(main, in: workspace, context: context, operations: operations)
        try await fixture.registerAsEtcdWould(token: token, name: main.members[0].name, peerURL: main.members[0].peerURL)
        try await mode.tearDown(main, in: workspace, wipe: false, operations: operations)
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/").count == 2)
        try await mode.tearDown(main, in: workspace, wipe: true, operations: operations)
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/").isEmpty)
        #expect(try LocalState(directory: fixture.state, create: false).discoveryTokens()["main"] == nil)
    }

    /// The members get every endpoint of the backend, and so does muster: one that refuses the
    /// connection is passed over; an answer from etcd (an error included) is final.
    @Test func aDeadEndpointIsPassedOverAndTheNextOneAnswers() async throws {
        let fixture = try await Fixture()
        let dead = "http://127.0.0.1:\(try FreePorts.pick(1)[0])"
        let registry = V3DiscoveryRegistry(endpoints: [dead, fixture.backend.clientURL], prefix: "/_etcd/registry/t1", tls: nil)
        try await registry.setSize(5)
        #expect(try await registry.size() == "5")
        #expect(try await fixture.keys(under: "/_etcd/registry/t1/") == ["/_etcd/registry/t1/_config/size": "5"])
        let none = V3DiscoveryRegistry(endpoints: [dead], prefix: "/_etcd/registry/t1", tls: nil)
        await #expect(throws: EtcdClientError.self) { try await none.setSize(5) }
    }

    /// An inventory backend with TLS on (client-cert-auth): muster writes the size with its
    /// client certificate of the backend, and the files it ships to each member (the backend's
    /// CA, a client certificate that CA issued) are what a member registers with.
    @Test func aTLSBackendTakesTheMembersClientCertificate() async throws {
        let fixture = try await Fixture(tlsBackend: true)
        let workspace = try fixture.workspace()
        let (main, mode) = try mode(workspace)
        let token = mode.discovery.token
        #expect(mode.discovery.endpoints == [fixture.backend.clientURL] && mode.discovery.clientCertificate)
        let disco = try #require(workspace.plan.cluster(named: "disco"))
        let backendCertificates = try ClusterCertificates(cluster: disco, stateDirectory: fixture.state)
        var certificates = try ClusterCertificates(cluster: main, stateDirectory: fixture.state)
        try certificates.addDiscoveryClient(mode.discovery, of: main, backend: backendCertificates, external: nil)
        try backendCertificates.commit()
        try await mode.beforeStart(main, in: workspace, context: context, operations: try await operations())
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/") == ["/_etcd/registry/\(token)/_config/size": "3"])
        // Member a's shipped files, written out as its host would hold them.
        let member = main.members[0]
        let shipped = certificates.files.filter { $0.host == member.host && $0.path.contains("/discovery-") }
        #expect(Set(shipped.map(\.path)) == [member.paths.discoveryCACert, member.paths.discoveryCert, member.paths.discoveryKey])
        #expect(shipped.first { $0.path == member.paths.discoveryKey }?.mode == 0o600)
        for file in shipped {
            try Data(file.contents.utf8).write(to: URL(fileURLWithPath: fixture.directory.path + "/" + URL(fileURLWithPath: file.path).lastPathComponent))
        }
        let files = (fixture.directory.path + "/discovery-ca.crt", fixture.directory.path + "/discovery-client.crt",
                     fixture.directory.path + "/discovery-client.key")
        try await fixture.registerAsEtcdWould(token: token, name: member.name, peerURL: member.peerURL, credentials: files)
        #expect(try await fixture.keys(under: "/_etcd/registry/\(token)/members").count == 1)
        // Without a client certificate the backend refuses: TLS stays on for real.
        let anonymous = try await LocalProcess.runOffPool([Self.etcdctl, "--endpoints=\(fixture.backend.clientURL)", "--command-timeout=5s",
                                                          "--cacert", files.0, "put", "/x", "y"], environment: ["ETCDCTL_API": "3"], timeout: 30)
        #expect(!anonymous.succeeded)
    }
}

/// `muster up` over SSH on the sandbox with both clusters on TLS: the backend 'disco' (a real
/// etcd 3.5.16, which serves v3 discovery as a 3.6 one would) comes up with a CA this run makes,
/// and 'main' is planned for 3.6.14 members (`member.version`). The run writes the size key
/// through the backend's TLS gateway and ships each member of 'main' the backend's CA and a
/// client certificate of it. No 3.6 binary exists here: main's members run the 3.5.16 binary,
/// which knows no `discovery-config` and starts each member as a cluster of its own (as etcd
/// does with a config file that names no peers); verification catches it. THE TEST then
/// registers as a 3.6 member would, with the files muster put on that member's host.
@Suite(.serialized) struct DiscoveryV3SandboxTests {
    @Test func upWritesTheSizeOverTLSAndShipsEachMemberAClientCertificateOfTheBackend() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.discovery, binary: DeploySandbox.etcd35) {
                $0.replacingOccurrences(of: "  binary: \(DeploySandbox.etcd35)\n", with: "  binary: \(DeploySandbox.etcd35)\n  version: 3.6.14\n")
                    .replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n")
            }
            let planned = try builder.build()
            let main = try #require(planned.plan.cluster(named: "main"))
            let discovery = try #require(main.discoveryV3)
            #expect(discovery.tls && discovery.clientCertificate)
            final class Lines: @unchecked Sendable {
                let lock = NSLock()
                var text = ""
                func add(_ line: String) { lock.lock(); text += line + "\n"; lock.unlock() }
            }
            let upLines = Lines()
            let outcome = try await DeploySandbox.up(builder, progress: Progress(observer: { upLines.add($0.line) }))
            #expect(outcome.reports.first { $0.clusterName == "disco" }?.ok == true)
            #expect(outcome.reports.first { $0.clusterName == "main" }?.ok == false,
                    "3.5.16 members cannot bootstrap by v3 discovery: each is a cluster of one, which verification must refuse")
            // The size key went in over TLS before the first member started, and (the members
            // answering healthy) the token's keys were deleted: the size key was the only one.
            #expect(upLines.text.contains("cluster main: discovery size 2 written at /_etcd/registry/\(discovery.token)/_config/size"), "\(upLines.text)")
            #expect(upLines.text.contains("cluster main: 1 key(s) of discovery token \(discovery.token) deleted"), "\(upLines.text)")
            let state = planned.state.directory
            #expect(FileManager.default.fileExists(atPath: state + "/pki/disco/discovery-client-main.crt"))
            let scratch = try TemporaryDirectory(prefix: "muster-v3disc-sandbox")
            let backendURL = try #require(discovery.endpoints.first)
            func etcdctl(_ arguments: [String], ca: String, cert: String, key: String) throws -> ProcessResult {
                try LocalProcess.run([DiscoveryV3ProtocolTests.etcdctl, "--endpoints=\(backendURL)", "--command-timeout=10s",
                                      "--cacert", ca, "--cert", cert, "--key", key] + arguments,
                                     environment: ["ETCDCTL_API": "3"], timeout: 30)
            }
            // On main's first host: the files muster shipped, the key private to etcd.
            let member = main.members[0]
            #expect(try DeploySandbox.exec(member.host, "stat -c '%a %U' \(member.paths.discoveryKey)") == "600 etcd")
            for path in [member.paths.discoveryCACert, member.paths.discoveryCert, member.paths.discoveryKey] {
                let text = try DeploySandbox.exec(member.host, "cat \(path)") + "\n"
                try Data(text.utf8).write(to: URL(fileURLWithPath: scratch.path + "/" + URL(fileURLWithPath: path).lastPathComponent))
            }
            // Written BY THE TEST in place of a 3.6 member, with its files, in etcd's layout.
            let id = String(try #require(member.memberID), radix: 16)
            let put = try etcdctl(["put", "/_etcd/registry/\(discovery.token)/members/\(id)", "\(member.name)=\(member.peerURL)"],
                                  ca: scratch.path + "/discovery-ca.crt", cert: scratch.path + "/discovery-client.crt",
                                  key: scratch.path + "/discovery-client.key")
            #expect(put.succeeded, "\(put.stderrText)")
            // The backend's client port still asks for a certificate: without one, no entry.
            let anonymous = try LocalProcess.run([DiscoveryV3ProtocolTests.etcdctl, "--endpoints=\(backendURL)", "--command-timeout=5s",
                                                  "--cacert", scratch.path + "/discovery-ca.crt", "put", "/x", "y"],
                                                 environment: ["ETCDCTL_API": "3"], timeout: 30)
            #expect(!anonymous.succeeded)
            // down --wipe-data: the token's keys (the test's registration) leave the backend before it stops.
            let downLines = Lines()
            var tearDown = TearDown(builder: builder, options: DeploySandbox.options, progress: Progress(observer: { downLines.add($0.line) }))
            tearDown.wipeData = true
            try await tearDown.run()
            #expect(downLines.text.contains("cluster main: 1 key(s) of discovery token \(discovery.token) deleted"), "\(downLines.text)")
            #expect(try LocalState(directory: state, create: false).discoveryTokens()["main"] == nil)
        }
    }
}
