import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One host of a running sandbox switched off and on again, as a machine that loses power: the
/// fault tests' "host goes away" (and, while it is off, "connection refused": its namespace and
/// address stay, nothing listens on port 22).
extension Sandbox {
    /// Kills the host's pid 1 (its sshd), which takes every process of its pid namespace with
    /// it (etcd, dnsmasq), and waits (bounded) until they are gone. Its files stay in its overlay.
    public static func powerOff(host name: String, stateDir: String) throws -> SandboxState {
        let (state, index) = try hostWithoutInit(name, stateDir: stateDir)
        let host = state.hosts[index]
        let processes = [host.sshd, host.launcher].compactMap { $0 }
        for process in processes { System.signal(process, SIGKILL) }
        let gone = System.waitUntil(attempts: 100, interval: 0.1) {
            for process in processes { System.reap(process.pid) }
            return !processes.contains(where: System.isAlive)
        }
        guard gone else { throw SandboxError("\(name): its processes outlived SIGKILL for 10 s") }
        return state
    }

    /// Boots a powered-off host again (the same overlay, host key and address) and waits
    /// (bounded) until its sshd listens; returns the state with its new pids recorded.
    public static func powerOn(host name: String, stateDir: String) throws -> SandboxState {
        var (state, index) = try hostWithoutInit(name, stateDir: stateDir)
        let host = state.hosts[index]
        guard !isRunning(host) else { return state }
        var launcher: SandboxProcess?
        let sshd = try launch(host) { launcher = $0 }
        state.hosts[index].launcher = launcher
        state.hosts[index].sshd = sshd
        try save(state)
        let ready = System.waitUntil(attempts: 100, interval: 0.1) {
            System.tcpReachable(address: host.address, port: host.sshPort)
        }
        guard ready else {
            throw SandboxError("\(name): sshd did not listen again within 10 s; its log \(host.logPath):\n\(tail(host.logPath))")
        }
        return state
    }

    /// Power faults are for hosts whose pid 1 is sshd; a systemd host reboots by itself.
    private static func hostWithoutInit(_ name: String, stateDir: String) throws -> (SandboxState, Int) {
        try System.requireRoot("host power")
        guard let state = try loadState(stateDir: absolute(stateDir)) else { throw SandboxError("no sandbox in \(stateDir)") }
        guard let index = state.hosts.firstIndex(where: { $0.name == name }) else { throw SandboxError("no host \(name) in \(stateDir)") }
        guard state.hosts[index].initSystem == .none else {
            throw SandboxError("\(name) boots systemd: power it off with `systemctl poweroff` inside it instead")
        }
        return (state, index)
    }
}
