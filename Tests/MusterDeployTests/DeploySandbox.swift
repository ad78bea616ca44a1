import Foundation
import MusterBasics
import MusterDeploy
import MusterPlan
import MusterWorkspace
import MusterSandbox
import MusterTestSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

/// A sandbox of the deploy tests' own (not the sandbox tests' one, whose last test tears its
/// sandbox down), brought up once per test process and removed at exit.
enum DeploySandbox {
    /// `MUSTER_DEPLOY_SANDBOX=DIR` gives a test run a sandbox of its own (another slot, bridge
    /// and subnet), so that two worktrees' runs on one machine never share hosts.
    static let stateDir = ProcessInfo.processInfo.environment["MUSTER_DEPLOY_SANDBOX"] ?? "/var/lib/muster/sandbox-deploy-tests"
    private final class Box: @unchecked Sendable {
        let lock = NSLock()
        var state: SandboxState?
        var failure: String?
    }
    private static let box = Box()
    /// Hosts the sandbox has: most scenarios use host1...host3 (`acquire()`, `inventory`); a move
    /// off a host that is down and 3 -> 5 -> 3 need more (`inventory(_:hosts:)`, `acquireAll()`).
    static let hostCount = 5
    /// What most scenarios see: the first three hosts.
    static let defaultHosts = 3

    /// The sandbox as most scenarios see it: its first three hosts.
    static func acquire() throws -> SandboxState {
        var state = try acquireAll()
        state.hosts = Array(state.hosts.prefix(defaultHosts))
        return state
    }

    static func acquireAll() throws -> SandboxState {
        box.lock.lock(); defer { box.lock.unlock() }
        if let state = box.state { return state }
        if let failure = box.failure { throw SandboxError("deploy sandbox failed earlier: \(failure)") }
        do {
            let say = { (line: String) in FileHandle.standardError.write(Data("[deploy sandbox] \(line)\n".utf8)) }
            var (state, _) = try Sandbox.up(hosts: hostCount, stateDir: stateDir, log: say)
            if state.hosts.count < hostCount {
                // One from before it had more hosts: made again with them.
                try Sandbox.down(stateDir: stateDir, log: say)
                (state, _) = try Sandbox.up(hosts: hostCount, stateDir: stateDir, log: say)
            }
            box.state = state
            atexit { try? Sandbox.down(stateDir: DeploySandbox.stateDir) { _ in } }
            return state
        } catch {
            box.failure = "\(error)"
            throw error
        }
    }

    /// etcd 3.5.16 as scripts/fetch-etcd-debian.sh unpacks Debian 13's (set-up fetches it, never a test).
    static let etcd35 = ProcessInfo.processInfo.environment["MUSTER_ETCD35"] ?? "/var/cache/muster/etcd-3.5/usr/bin/etcd"
    /// Debian sid's etcd (3.5.30 when written), unpacked by scripts/fetch-etcd-debian.sh.
    static let etcdSid = ProcessInfo.processInfo.environment["MUSTER_ETCD_SID"] ?? "/var/cache/muster/etcd-sid/usr/bin/etcd"

    static var options: RunOptions {
        var options = RunOptions()
        // Network rule: nothing but the sandbox's own addresses, routed through its bridge.
        options.addressGuard = { addresses in
            // The gateway is the controller's own side of the bridge (services for hosts listen there).
            let gateway = (try? DeploySandbox.acquireAll())?.gateway
            try Sandbox.checkRoutes(to: addresses.filter { $0 != gateway }, stateDir: DeploySandbox.stateDir)
        }
        return options
    }

    /// Writes a sandbox inventory (optionally edited) to a fresh directory; returns its builder.
    static func inventory(_ bootstrap: SandboxBootstrap, binary: String = "/usr/bin/etcd", hosts: Int = defaultHosts,
                          edit: (String) -> String = { $0 }) throws -> PlanBuilder {
        var state = try acquireAll()
        state.hosts = Array(state.hosts.prefix(hosts))
        let directory = try TemporaryDirectory.create(prefix: "muster-deploy")
        let path = directory + "/inventory.yml"
        let text = edit(try Sandbox.inventoryYAML(state: state, bootstrap: bootstrap, memberBinary: binary))
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return PlanBuilder(inventoryPath: path, templatesDirectory: repositoryRoot + "/templates")
    }

    static func host(_ name: String) throws -> SandboxHost {
        guard let host = try acquireAll().host(named: name) else { throw SandboxError("no \(name)") }
        return host
    }

    /// Switches a host off (its sshd, pid 1 of its namespace, killed with all it runs) or on
    /// again; the sandbox state the tests hold follows its new pids.
    static func powerOff(_ name: String) throws {
        _ = try acquireAll()
        let state = try Sandbox.powerOff(host: name, stateDir: stateDir)
        box.lock.lock(); box.state = state; box.lock.unlock()
    }

    static func powerOn(_ name: String) throws {
        _ = try acquireAll()
        let state = try Sandbox.powerOn(host: name, stateDir: stateDir)
        box.lock.lock(); box.state = state; box.lock.unlock()
    }

    /// Runs a command inside a sandbox host.
    static func exec(_ name: String, _ command: String) throws -> String {
        let result = try Sandbox.exec(host: host(name), command: command)
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Leaves every host as a scenario expects to find it, whatever an earlier failed one left:
    /// no member or dnsmasq running, no etcd data or config, the original resolv.conf.
    static func wipeHosts() throws {
        for host in try acquireAll().hosts {
            try Sandbox.exec(host: host, command: """
                for p in /run/etcd/*.pid; do [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
                rm -rf /var/lib/etcd /etc/etcd /run/etcd /var/log/etcd /etc/dnsmasq.d/muster-*
                [ -f /etc/resolv.conf.muster-backup ] && cat /etc/resolv.conf.muster-backup > /etc/resolv.conf && rm -f /etc/resolv.conf.muster-backup
                true
                """)
        }
    }

    static func down(_ builder: PlanBuilder, wipe: Bool) async throws {
        var tearDown = TearDown(builder: builder, options: options, progress: Progress(quiet: true))
        tearDown.wipeData = wipe
        try await tearDown.run()
    }

    /// The static 3-member inventory with TLS on, brought up and verified; with the directory of
    /// its PKI in the state dir (`ca.crt`, `client.crt`, `client.key`).
    static func formedTLSCluster(binary: String = "/usr/bin/etcd") async throws -> (builder: PlanBuilder, pki: String) {
        let builder = try inventory(.static, binary: binary) { $0.replacingOccurrences(of: "    tls: false\n", with: "    tls: true\n") }
        let formed = try await up(builder)
        #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
        return (builder, try builder.build().state.directory + "/pki/main")
    }

    static func up(_ builder: PlanBuilder, progress: MusterDeploy.Progress = MusterDeploy.Progress()) async throws -> BringUp.Outcome {
        try await bringUp(builder: builder, options: options, progress: progress).run()
    }

    /// `up` as scenarios run it: without the disk check, which would measure the CI machine's
    /// disk under whatever load it has; DiskCheckTests cover it on devices of their own.
    static func bringUp(builder: PlanBuilder, options: RunOptions, progress: MusterDeploy.Progress) -> BringUp {
        var bringUp = BringUp(builder: builder, options: options, progress: progress)
        bringUp.checkDisks = false
        return bringUp
    }

    /// `up` with every progress line kept, and the error it ended with (nil on success).
    static func upSaying(_ builder: PlanBuilder) async -> (lines: String, error: (any Error)?) {
        final class Lines: @unchecked Sendable {
            let lock = NSLock()
            var text = ""
            func add(_ line: String) { lock.lock(); text += line + "\n"; lock.unlock() }
        }
        let lines = Lines()
        do {
            _ = try await up(builder, progress: MusterDeploy.Progress(observer: { lines.add($0.line) }))
            return (lines.text, nil)
        } catch {
            return (lines.text, error)
        }
    }
}

/// Suites run in parallel, but every sandbox scenario uses the same three hosts and ports:
/// each scenario holds this lock for its whole run.
actor SandboxLock {
    static let shared = SandboxLock()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}

/// Runs `body` alone on the deploy sandbox.
func onSandbox<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    await SandboxLock.shared.acquire()
    do {
        try DeploySandbox.wipeHosts()
        let value = try await body()
        await SandboxLock.shared.release()
        return value
    } catch {
        await SandboxLock.shared.release()
        throw error
    }
}
