import Foundation

/// What runs as pid 1 of a sandbox host.
public enum SandboxInit: String, Sendable, Codable, CaseIterable {
    /// sshd itself (the default: the fastest host, and what the benchmark measures).
    case none
    /// systemd, booted by `systemd-nspawn --boot`; sshd runs as its ssh.service.
    case systemd
}

/// `muster sandbox up --init`: one init for every host, or `mixed` (host1 systemd, host2 none, ...).
public enum SandboxInitMode: String, Sendable, CaseIterable {
    case none, systemd, mixed

    /// The init of the host at `index` (0-based).
    public func initSystem(ofHostAt index: Int) -> SandboxInit {
        switch self {
        case .none: .none
        case .systemd: .systemd
        case .mixed: index % 2 == 0 ? .systemd : .none
        }
    }
}

/// One sandbox host: a network namespace with its own sshd, hostname, pid namespace and a private
/// copy-on-write view of the controller's root filesystem.
public struct SandboxHost: Sendable, Codable, Equatable {
    /// Inventory name: `host1`, `host2`, ...
    public var name: String
    /// `ip netns` name, e.g. `muster-h1`.
    public var namespace: String
    /// The host's IPv4 address on the sandbox bridge.
    public var address: String
    /// `hostN.sandbox.muster.test`; the host's own `/etc/hosts` knows it.
    public var fqdn: String
    public var sshPort: Int
    /// The controller-side end of the host's veth pair (the host side is `eth0`).
    public var veth: String
    /// Everything of this host on the controller: `STATE/hosts/host1`.
    public var rootDir: String
    /// Overlay layers: `lowerdir=/`, this `upperdir` (the host's own files) and `workdir`,
    /// mounted at `mergedDir` inside the host's private mount namespace only.
    public var upperDir: String
    public var workDir: String
    public var mergedDir: String
    /// The launcher's stdout and stderr: sshd's own messages on a host without init, the
    /// console (boot and shutdown messages) and the boot loop's lines on a systemd host.
    public var logPath: String
    /// The host's launcher on the controller. Without init: `unshare`, parent of the host's pid
    /// namespace. With systemd: the boot loop (a shell in a mount namespace holding the overlay)
    /// that starts `systemd-nspawn` again whenever the host reboots.
    public var launcher: SandboxProcess?
    /// Without init: sshd, pid 1 of the host's pid namespace, as the controller sees it. With
    /// systemd: nil (sshd is the host's ssh.service; see `Sandbox.processes(of:)`).
    public var sshd: SandboxProcess?
    public var sshdPid: Int32 { sshd?.pid ?? 0 }
    /// What runs as the host's pid 1. State files written before systemd hosts existed have no
    /// such field: those hosts are `none`.
    public var initSystem: SandboxInit

    public init(name: String, namespace: String, address: String, fqdn: String, sshPort: Int,
                veth: String, rootDir: String, upperDir: String, workDir: String, mergedDir: String,
                logPath: String, launcher: SandboxProcess? = nil, sshd: SandboxProcess? = nil,
                initSystem: SandboxInit = .none) {
        self.name = name; self.namespace = namespace; self.address = address; self.fqdn = fqdn
        self.sshPort = sshPort; self.veth = veth; self.rootDir = rootDir; self.upperDir = upperDir
        self.workDir = workDir; self.mergedDir = mergedDir; self.logPath = logPath
        self.launcher = launcher; self.sshd = sshd; self.initSystem = initSystem
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), namespace: try c.decode(String.self, forKey: .namespace),
            address: try c.decode(String.self, forKey: .address), fqdn: try c.decode(String.self, forKey: .fqdn),
            sshPort: try c.decode(Int.self, forKey: .sshPort), veth: try c.decode(String.self, forKey: .veth),
            rootDir: try c.decode(String.self, forKey: .rootDir), upperDir: try c.decode(String.self, forKey: .upperDir),
            workDir: try c.decode(String.self, forKey: .workDir), mergedDir: try c.decode(String.self, forKey: .mergedDir),
            logPath: try c.decode(String.self, forKey: .logPath),
            launcher: try c.decodeIfPresent(SandboxProcess.self, forKey: .launcher),
            sshd: try c.decodeIfPresent(SandboxProcess.self, forKey: .sshd),
            initSystem: try c.decodeIfPresent(SandboxInit.self, forKey: .initSystem) ?? .none)
    }

    /// Where a systemd host's boot loop records the running `systemd-nspawn` ("PID STARTTIME").
    public var nspawnRecordPath: String { rootDir + "/nspawn.pid" }
    /// Present while `down` stops a systemd host: its boot loop then starts no new boot.
    var stopPath: String { rootDir + "/stop" }
    /// nspawn's machine name (its lock and propagation directories in /run/systemd/nspawn are
    /// named after it, so it must differ between hosts: the root directories are all `root`).
    var machineName: String { namespace }
}

/// A process the sandbox started, recorded with its kernel start time so that a reused pid is
/// never signalled.
public struct SandboxProcess: Sendable, Codable, Equatable {
    public var role: String
    public var pid: Int32
    public var startTime: UInt64
}

public struct SandboxState: Sendable, Codable, Equatable {
    public enum Phase: String, Sendable, Codable { case building, running }
    public var phase: Phase
    /// Which set of names this sandbox owns: 0 gives `mstr-br0` and `muster-h1`...
    public var slot: Int
    public var bridge: String
    /// `10.213.7.0/24`
    public var subnet: String
    /// The bridge's (controller's) address in the subnet, `.1`.
    public var gateway: String
    public var domain: String
    public var hosts: [SandboxHost]
    public var clientKeyPath: String
    public var knownHostsPath: String
    public var stateDir: String
    public var createdAt: Date

    /// Every process the sandbox recorded at start (launchers and sshds); a systemd host's
    /// nspawn and its container's init change with every boot: `Sandbox.processes(of:)` reads them.
    public var pids: [SandboxProcess] {
        hosts.flatMap { [$0.sshd, $0.launcher].compactMap { $0 } }
    }

    public init(phase: Phase, slot: Int, bridge: String, subnet: String, gateway: String,
                domain: String, hosts: [SandboxHost], clientKeyPath: String, knownHostsPath: String,
                stateDir: String, createdAt: Date) {
        self.phase = phase; self.slot = slot; self.bridge = bridge; self.subnet = subnet
        self.gateway = gateway; self.domain = domain; self.hosts = hosts
        self.clientKeyPath = clientKeyPath; self.knownHostsPath = knownHostsPath
        self.stateDir = stateDir; self.createdAt = createdAt
    }

    public func host(named name: String) -> SandboxHost? { hosts.first { $0.name == name } }
}

/// What `writeInventory` generates.
public enum SandboxBootstrap: String, Sendable, CaseIterable, Codable {
    case `static`, discovery, dns
}

public struct SandboxError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A health report of one sandbox, for `muster sandbox status`.
public struct SandboxStatus: Sendable {
    public var state: SandboxState
    /// Empty when every namespace, the bridge and every recorded process are alive.
    public var problems: [String]
    public var healthy: Bool { problems.isEmpty && state.phase == .running }

    public var report: String {
        var lines = ["sandbox \(state.stateDir): \(healthy ? "up" : "broken") "
                     + "(bridge \(state.bridge), subnet \(state.subnet), \(state.hosts.count) hosts)"]
        for host in state.hosts {
            switch host.initSystem {
            case .none:
                lines.append("  \(host.name)  \(host.address)  netns \(host.namespace)  init none  sshd pid \(host.sshdPid)")
            case .systemd:
                lines.append("  \(host.name)  \(host.address)  netns \(host.namespace)  init systemd  "
                             + "boot loop pid \(host.launcher?.pid ?? 0)")
            }
        }
        lines += problems.map { "  problem: \($0)" }
        return lines.joined(separator: "\n")
    }
}
