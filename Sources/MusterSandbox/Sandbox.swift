import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// `muster sandbox`: N real hosts on this machine, each a network namespace on a bridge of the
/// sandbox's own, with its own sshd, hostname, pid namespace and private copy-on-write root; sshd
/// is pid 1 (`--init none`) or systemd is, booted by systemd-nspawn (`--init systemd`).
public enum Sandbox {
    public static let defaultStateDir = "/var/lib/muster/sandbox"
    public static let domain = "sandbox.muster.test"
    static let ip = "/usr/sbin/ip"
    /// Bridge name -> state dir, for `checkRoute(to:)` without a state dir.
    static let registryDir = "/run/muster-sandbox"

    // MARK: up

    /// Brings a sandbox up in `stateDir`. When one already runs there it changes nothing and
    /// returns it with `alreadyRunning`; one left half-built (or with dead processes) is torn down
    /// and rebuilt.
    public static func up(hosts count: Int = 3, initMode: SandboxInitMode = .none,
                          stateDir: String = defaultStateDir,
                          log: (String) -> Void) throws -> (SandboxState, alreadyRunning: Bool) {
        try System.requireRoot("up")
        try System.requireTools(systemd: initMode != .none)
        guard (1...200).contains(count) else { throw SandboxError("--hosts must be 1...200, not \(count)") }
        let stateDir = absolute(stateDir)
        let lock = try SandboxLock()
        defer { withExtendedLifetime(lock) {} }

        if let existing = try loadState(stateDir: stateDir) {
            let status = check(existing)
            if status.healthy {
                log("sandbox already running in \(stateDir) (\(existing.hosts.count) hosts on \(existing.bridge), \(existing.subnet))")
                let asked = (0..<count).map(initMode.initSystem(ofHostAt:))
                if existing.hosts.map(\.initSystem) != asked {
                    log("note: it differs from the \(count) hosts with --init \(initMode.rawValue) asked for; "
                        + "`muster sandbox down` first to change it")
                }
                return (existing, true)
            }
            log("sandbox in \(stateDir) is half-built or broken (\(status.problems.joined(separator: "; "))): tearing it down")
            teardown(existing, log: log)
        } else if FileManager.default.fileExists(atPath: stateDir) {
            log("removing leftovers in \(stateDir) (no state file)")
            try removeStateDir(stateDir)
        }

        var state = try allocate(hosts: count, initMode: initMode, stateDir: stateDir)
        do {
            try build(&state, log: log)
        } catch {
            log("bringing the sandbox up failed: \(error); tearing down what was built")
            teardown((try? loadState(stateDir: stateDir)) ?? state, log: log)
            throw error
        }
        return (state, false)
    }

    static func allocate(hosts count: Int, initMode: SandboxInitMode = .none, stateDir: String) throws -> SandboxState {
        let namespaces = Network.namespaces()
        let registered = Set((try? FileManager.default.contentsOfDirectory(atPath: registryDir)) ?? [])
        guard let slot = (0..<64).first(where: { slot in
            let names = Self.names(slot: slot, hosts: count)
            return !Network.linkExists(names.bridge) && !registered.contains(names.bridge)
                && names.namespaces.allSatisfy { !namespaces.contains($0) }
                && names.veths.allSatisfy { !Network.linkExists($0) }
        }) else { throw SandboxError("no free sandbox names (mstr-br0...mstr-br63 all taken)") }
        let names = Self.names(slot: slot, hosts: count)
        let network = try Network.pickSubnet()
        let hosts = (1...count).map { index -> SandboxHost in
            let name = "host\(index)"
            let root = "\(stateDir)/hosts/\(name)"
            let initSystem = initMode.initSystem(ofHostAt: index - 1)
            return SandboxHost(
                name: name, namespace: names.namespaces[index - 1],
                address: Network.format(network + 10 + UInt32(index)), fqdn: "\(name).\(domain)",
                sshPort: 22, veth: names.veths[index - 1], rootDir: root,
                upperDir: root + "/upper", workDir: root + "/work", mergedDir: root + "/root",
                logPath: root + (initSystem == .systemd ? "/console.log" : "/sshd.log"),
                launcher: nil, sshd: nil, initSystem: initSystem)
        }
        return SandboxState(
            phase: .building, slot: slot, bridge: names.bridge,
            subnet: Network.format(network) + "/24", gateway: Network.format(network + 1),
            domain: domain, hosts: hosts, clientKeyPath: stateDir + "/client_ed25519",
            knownHostsPath: stateDir + "/known_hosts", stateDir: stateDir, createdAt: Date())
    }

    /// Slot 0 owns `mstr-br0`, `muster-h1`..., `mstr0-h1`...; slot K `mstr-brK`, `musterK-h1`...
    static func names(slot: Int, hosts: Int) -> (bridge: String, namespaces: [String], veths: [String]) {
        let prefix = slot == 0 ? "muster" : "muster\(slot)"
        return ("mstr-br\(slot)", (1...hosts).map { "\(prefix)-h\($0)" },
                (1...hosts).map { "mstr\(slot)-h\($0)" })
    }

    static func build(_ state: inout SandboxState, log: (String) -> Void) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: state.stateDir, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        try save(state)
        try fm.createDirectory(atPath: registryDir, withIntermediateDirectories: true)
        try Data(state.stateDir.utf8).write(to: URL(fileURLWithPath: "\(registryDir)/\(state.bridge)"))

        log("client key \(state.clientKeyPath)")
        try LocalProcess.check(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                                "-C", "muster-sandbox", "-f", state.clientKeyPath])
        let clientPublicKey = try String(contentsOfFile: state.clientKeyPath + ".pub", encoding: .utf8)

        log("bridge \(state.bridge) \(state.gateway)/24")
        try LocalProcess.check([ip, "link", "add", state.bridge, "type", "bridge"])
        try LocalProcess.check([ip, "addr", "add", state.gateway + "/24", "dev", state.bridge])
        try LocalProcess.check([ip, "link", "set", state.bridge, "up"])

        for index in state.hosts.indices {
            let host = state.hosts[index]
            log("\(host.name): netns \(host.namespace), \(host.address)")
            try LocalProcess.check([ip, "netns", "add", host.namespace])
            try LocalProcess.check([ip, "link", "add", host.veth, "type", "veth",
                                    "peer", "name", "eth0", "netns", host.namespace])
            try LocalProcess.check([ip, "link", "set", host.veth, "master", state.bridge, "up"])
            try LocalProcess.check([ip, "-n", host.namespace, "link", "set", "lo", "up"])
            try LocalProcess.check([ip, "-n", host.namespace, "addr", "add", host.address + "/24", "dev", "eth0"])
            try LocalProcess.check([ip, "-n", host.namespace, "link", "set", "eth0", "up"])
            try HostRoot.prepare(host: host, state: state, clientPublicKey: clientPublicKey)
            let recordLauncher = { (launcher: SandboxProcess) in
                state.hosts[index].launcher = launcher
                try save(state)
            }
            switch host.initSystem {
            case .none: state.hosts[index].sshd = try launch(host, recordLauncher: recordLauncher)
            case .systemd: try SystemdHost.launch(host, recordLauncher: recordLauncher)
            }
            try save(state)
        }

        try checkRoutes(to: state.hosts.map(\.address), state: state)
        for host in state.hosts {
            // systemd boots in 1-2 s on an idle machine; a loaded one gets 30 s.
            let seconds = host.initSystem == .systemd ? 30 : 10
            let ready = System.waitUntil(attempts: seconds * 10, interval: 0.1) {
                System.tcpReachable(address: host.address, port: host.sshPort) || !isRunning(host)
            }
            guard ready, isRunning(host) else {
                throw SandboxError("\(host.name): sshd did not start listening on \(host.address):\(host.sshPort) "
                    + "within \(seconds) s; its log \(host.logPath):\n\(tail(host.logPath))")
            }
        }

        var knownHosts = ""
        for host in state.hosts {
            let key = try HostRoot.hostKey(of: host)
            knownHosts += "\(host.address) \(key)\n\(host.fqdn) \(key)\n"
        }
        try Data(knownHosts.utf8).write(to: URL(fileURLWithPath: state.knownHostsPath))
        state.phase = .running
        try save(state)
        log("sandbox up: \(state.hosts.count) hosts on \(state.bridge) (\(state.subnet)), state in \(state.stateDir)")
    }

    /// Whether the host's processes run: its sshd (no init), or its boot loop and nspawn (systemd).
    static func isRunning(_ host: SandboxHost) -> Bool {
        switch host.initSystem {
        case .none: host.sshd.map(System.isAlive) ?? false
        case .systemd: (host.launcher.map(System.isAlive) ?? false) && SystemdHost.nspawnProcess(of: host) != nil
        }
    }

    /// The host's live processes the sandbox knows: launcher and sshd (no init); boot loop,
    /// the current boot's systemd-nspawn and the container's systemd (systemd).
    public static func processes(of host: SandboxHost) -> [SandboxProcess] {
        let known = [host.sshd, host.launcher] + (host.initSystem == .systemd
            ? [SystemdHost.nspawnProcess(of: host), SystemdHost.initProcess(of: host)] : [])
        return known.compactMap { $0 }.filter(System.isAlive)
    }

    /// Starts a host without init: `ip netns exec` + `unshare` (new mount, UTS, IPC and pid namespaces) run
    /// the launch script, spawned directly (not through Foundation's Process, whose termination
    /// watch never fires while a daemon holds its descriptors) in a session of its own, with every
    /// descriptor but the log closed. `recordLauncher` is called as soon as the pid is known.
    static func launch(_ host: SandboxHost, recordLauncher: (SandboxProcess) throws -> Void)
        throws -> SandboxProcess
    {
        let pid = try System.spawnDetached([
            ip, "netns", "exec", host.namespace,
            "/usr/bin/unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
            "--propagation", "private", "/bin/sh", "-c", HostRoot.launchScript(host: host),
        ], log: host.logPath)
        guard let launcher = System.record(pid, role: "\(host.name) launcher") else {
            throw SandboxError("\(host.name): the launcher exited at once; its log \(host.logPath):\n\(tail(host.logPath))")
        }
        try recordLauncher(launcher)
        var sshd: SandboxProcess?
        System.waitUntil(attempts: 100, interval: 0.05) {
            if let child = System.children(of: launcher.pid).first {
                sshd = System.record(child, role: "\(host.name) sshd")
            }
            return sshd != nil || !System.isAlive(launcher)
        }
        guard let sshd else {
            throw SandboxError("\(host.name): the host did not start within 5 s; its log \(host.logPath):\n\(tail(host.logPath))")
        }
        return sshd
    }

    // MARK: down

    /// Stops every process the sandbox started (by recorded pid and start time, never by name),
    /// removes its namespaces, veths, bridge and state. Without a sandbox it says so and succeeds.
    public static func down(stateDir: String = defaultStateDir, log: (String) -> Void) throws {
        try System.requireRoot("down")
        let stateDir = absolute(stateDir)
        let lock = try SandboxLock()
        defer { withExtendedLifetime(lock) {} }
        guard let state = try loadState(stateDir: stateDir) else {
            if FileManager.default.fileExists(atPath: stateDir) { try removeStateDir(stateDir) }
            log("no sandbox in \(stateDir)")
            return
        }
        teardown(state, log: log)
        let leftovers = leftovers(of: state)
        if !leftovers.isEmpty {
            throw SandboxError("sandbox in \(stateDir) not fully removed: \(leftovers.joined(separator: "; "))")
        }
        log("sandbox down")
    }

    /// What of `state` still exists on the machine: empty after a complete `down`.
    public static func leftovers(of state: SandboxState) -> [String] {
        var found = state.pids.filter(System.isAlive).map { "\($0.role) pid \($0.pid) still running" }
        let namespaces = Network.namespaces()
        for host in state.hosts {
            if host.initSystem == .systemd { found += SystemdHost.leftovers(host) }
            if namespaces.contains(host.namespace) { found.append("netns \(host.namespace)") }
            if Network.linkExists(host.veth) { found.append("link \(host.veth)") }
        }
        if Network.linkExists(state.bridge) { found.append("bridge \(state.bridge)") }
        if FileManager.default.fileExists(atPath: state.stateDir) { found.append("state dir \(state.stateDir)") }
        return found
    }

    /// Best effort, in order, each step bounded; used by `down` and before a rebuild.
    static func teardown(_ state: SandboxState, log: (String) -> Void) {
        // systemd hosts power off first (bounded), so their units stop as on a real machine.
        let booted = state.hosts.filter { $0.initSystem == .systemd }
        SystemdHost.stop(booted, log: log)
        // Killing pid 1 of a host's pid namespace kills every process in it (etcd, dnsmasq, ...).
        let processes = state.pids + booted.flatMap(processes(of:))
        for process in processes where System.isAlive(process) {
            log("stopping \(process.role) (pid \(process.pid))")
            System.signal(process, SIGKILL)
        }
        for host in booted { SystemdHost.killCgroups(host) }
        let gone = System.waitUntil(attempts: 100, interval: 0.1) {
            for process in processes { System.reap(process.pid) }
            return !processes.contains(where: System.isAlive) && booted.allSatisfy { SystemdHost.cgroupPids($0).isEmpty }
        }
        if !gone { log("warning: some sandbox processes outlived SIGKILL for 10 s") }
        for host in booted { SystemdHost.removeLeftovers(host) }
        let namespaces = Network.namespaces()
        for host in state.hosts {
            if namespaces.contains(host.namespace) {
                log("removing netns \(host.namespace)")
                _ = try? LocalProcess.run([ip, "netns", "delete", host.namespace])
            }
            if Network.linkExists(host.veth) { _ = try? LocalProcess.run([ip, "link", "delete", host.veth]) }
        }
        if Network.linkExists(state.bridge) {
            log("removing bridge \(state.bridge)")
            _ = try? LocalProcess.run([ip, "link", "delete", state.bridge])
        }
        if let owner = try? String(contentsOfFile: "\(registryDir)/\(state.bridge)", encoding: .utf8),
           owner == state.stateDir {
            try? FileManager.default.removeItem(atPath: "\(registryDir)/\(state.bridge)")
        }
        do { try removeStateDir(state.stateDir) } catch { log("warning: \(error)") }
    }

    /// Unmounts anything the controller's mount namespace holds under `dir` (normally nothing:
    /// host mounts live in the hosts' own namespaces) and removes it.
    static func removeStateDir(_ dir: String) throws {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let mounts = mountinfo.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { return nil }
            let point = String(fields[4])
            return point == dir || point.hasPrefix(dir + "/") ? point : nil
        }
        for point in mounts.sorted(by: { $0.count > $1.count }) {
            _ = try? LocalProcess.run(["/usr/bin/umount", "-l", point])
        }
        if FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.removeItem(atPath: dir) } catch {
                throw SandboxError("cannot remove \(dir): \(error)")
            }
        }
    }

    // MARK: status

    /// The recorded sandbox in `stateDir`, or nil when there is none.
    public static func status(stateDir: String = defaultStateDir) -> SandboxState? {
        try? loadState(stateDir: absolute(stateDir))
    }

    /// The recorded sandbox with everything that is not as recorded, or nil when there is none.
    public static func statusReport(stateDir: String = defaultStateDir) -> SandboxStatus? {
        status(stateDir: stateDir).map(check)
    }

    static func check(_ state: SandboxState) -> SandboxStatus {
        var problems: [String] = []
        if state.phase != .running { problems.append("state is \(state.phase.rawValue)") }
        if !Network.linkExists(state.bridge) { problems.append("bridge \(state.bridge) missing") }
        let namespaces = Network.namespaces()
        for host in state.hosts {
            if !namespaces.contains(host.namespace) { problems.append("netns \(host.namespace) missing") }
            let recorded = host.initSystem == .systemd ? [host.launcher] : [host.launcher, host.sshd]
            for process in recorded {
                guard let process else { problems.append("\(host.name) never started"); continue }
                if !System.isAlive(process) { problems.append("\(process.role) (pid \(process.pid)) not running") }
            }
            if host.initSystem == .systemd, host.launcher.map(System.isAlive) == true,
               SystemdHost.nspawnProcess(of: host) == nil {
                problems.append("\(host.name): no systemd-nspawn running (rebooting?)")
            }
        }
        return SandboxStatus(state: state, problems: problems)
    }

    // MARK: route check and exec

    /// Refuses unless the route to every address leaves through the sandbox's bridge: muster
    /// calls this before it connects to any sandbox address (the network rule in DEVELOPERS.md).
    public static func checkRoutes(to addresses: [String], stateDir: String) throws {
        guard let state = status(stateDir: stateDir) else {
            throw SandboxError("no sandbox in \(stateDir): refusing to connect to \(addresses.joined(separator: ", "))")
        }
        try checkRoutes(to: addresses, state: state)
    }

    /// Like `checkRoutes(to:stateDir:)`, each address for whichever running sandbox owns the
    /// bridge its route leaves through.
    /// A sandbox's own bridge address (the controller's side, where services for its hosts
    /// listen) routes locally, through `lo`: allowed as that sandbox's; no other local address is.
    public static func checkRoutes(to addresses: [String]) throws {
        try checkRoutes(try Network.routes(to: addresses), registered: registeredSandboxes())
    }

    /// Every sandbox in the registry whose state still names the bridge it registered.
    static func registeredSandboxes() -> [SandboxState] {
        let bridges = (try? FileManager.default.contentsOfDirectory(atPath: registryDir)) ?? []
        return bridges.sorted().compactMap { bridge in
            guard let owner = try? String(contentsOfFile: "\(registryDir)/\(bridge)", encoding: .utf8),
                  let state = status(stateDir: owner), state.bridge == bridge else { return nil }
            return state
        }
    }

    /// The rule of `checkRoutes(to:)` over routes read already, against the sandboxes given.
    static func checkRoutes(_ routes: [String: Network.Route], registered: [SandboxState]) throws {
        for (address, route) in routes.sorted(by: { $0.key < $1.key }) {
            if route.isLocal {
                guard registered.contains(where: { $0.gateway == address }) else {
                    throw SandboxError("refusing to connect to \(address): it is an address of this machine (\(route.device)), "
                        + "not a muster sandbox bridge's")
                }
            } else if !registered.contains(where: { $0.bridge == route.device }) {
                throw SandboxError("refusing to connect to \(address): its route leaves through \(route.device), "
                    + "not a muster sandbox bridge")
            }
        }
    }

    public static func checkRoutes(to addresses: [String], state: SandboxState) throws {
        try checkRoutes(try Network.routes(to: addresses), state: state)
    }

    static func checkRoutes(_ routes: [String: Network.Route], state: SandboxState) throws {
        for (address, route) in routes.sorted(by: { $0.key < $1.key }) {
            if route.isLocal ? address != state.gateway : route.device != state.bridge {
                throw SandboxError("refusing to connect to \(address): its route leaves through \(route.device), "
                    + "not the sandbox bridge \(state.bridge)")
            }
        }
    }

    public static func checkRoute(to address: String, stateDir: String) throws {
        try checkRoutes(to: [address], stateDir: stateDir)
    }

    public static func checkRoute(to address: String) throws {
        try checkRoutes(to: [address])
    }

    public static func checkRoute(to address: String, state: SandboxState) throws {
        try checkRoutes(to: [address], state: state)
    }

    /// Runs `command` with `/bin/sh -c` inside `host`: its network, mount, UTS, IPC and pid
    /// namespaces and its root, entered through its pid 1 (sshd, or the container's systemd).
    /// For tests and debugging.
    @discardableResult
    public static func exec(host: SandboxHost, command: String, timeout: TimeInterval = 60) throws -> ProcessResult {
        let target: SandboxProcess?
        switch host.initSystem {
        case .none: target = host.sshd.flatMap { System.isAlive($0) ? $0 : nil }
        case .systemd: target = SystemdHost.initProcess(of: host)
        }
        guard let target else {
            throw SandboxError("\(host.name) is not running (no live \(host.initSystem == .systemd ? "systemd" : "sshd") found)")
        }
        return try LocalProcess.run([
            "/usr/bin/nsenter", "-t", String(target.pid), "-n", "-m", "-u", "-i", "-p", "-r", "-w",
            "/bin/bash", "-c", System.closeInherited, "muster-sandbox", "/bin/sh", "-c", command,
        ], environment: ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        timeout: timeout)
    }

    // MARK: state file

    static func statePath(_ stateDir: String) -> String { stateDir + "/state.json" }

    static func loadState(stateDir: String) throws -> SandboxState? {
        guard let data = FileManager.default.contents(atPath: statePath(stateDir)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(SandboxState.self, from: data) } catch {
            throw SandboxError("\(statePath(stateDir)) is unreadable (\(error)); remove it by hand after "
                + "checking `ip netns list` and `ip link` for muster-*/mstr-* leftovers")
        }
    }

    static func save(_ state: SandboxState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let path = statePath(state.stateDir)
        try encoder.encode(state).write(to: URL(fileURLWithPath: path + ".tmp"))
        guard rename(path + ".tmp", path) == 0 else {
            throw SandboxError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (full as NSString).standardizingPath
    }

    static func tail(_ path: String, lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no log)"
        // A systemd host's console log has CRLF line ends: split on any newline.
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).suffix(lines).joined(separator: "\n")
    }
}
