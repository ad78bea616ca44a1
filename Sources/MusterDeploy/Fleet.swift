import Foundation
import MusterBasics
import MusterInventory
import MusterSSH
import Synchronization

/// Options a run takes from the command line.
public struct RunOptions: Sendable {
    public var acceptNewHostKeys = false
    /// False on `--dry-run`: a key accepted as new is not written to known_hosts.
    public var recordHostKeys = true
    public var parallel = 16
    /// Called with host addresses before muster connects to them (throws to refuse); the
    /// sandbox's route check plugs in here (DEVELOPERS.md network rule). Takes them all at once
    /// so that a check can look every route up in one go.
    public var addressGuard: @Sendable ([String]) throws -> Void = { _ in }
    public init() {}

    /// `addressGuard` off the cooperative pool: it may run a process (the sandbox's `ip -batch`
    /// route check).
    func checkAddresses(_ addresses: [String]) async throws {
        let guardAddresses = addressGuard
        try await offPool { try guardAddresses(addresses) }
    }
}

/// One open SSH session per host, reused for every step of a run.
public final class Fleet: Sendable {
    /// Filled once by `connect`, emptied by `close`; read by every step meanwhile.
    private let open: Mutex<[String: SSHSession]>

    private init(sessions: [String: SSHSession]) { open = Mutex(sessions) }

    /// No host connected: for a command whose members answer on their own addresses.
    static func none() -> Fleet { Fleet(sessions: [:]) }

    public var sessions: [String: SSHSession] { open.withLock { $0 } }

    public static func target(for host: MusterInventory.Host, options: RunOptions) -> SSHTarget {
        SSHTarget(name: host.name, address: host.address, port: host.ssh.port, user: host.ssh.user,
                  identityFile: host.ssh.identity.map(expandTilde),
                  knownHostsFile: expandTilde(host.ssh.knownHosts),
                  acceptNewHostKeys: options.acceptNewHostKeys, recordHostKeys: options.recordHostKeys,
                  connectTimeout: Double(host.ssh.connectTimeout))
    }

    /// Connects to every host in parallel; on any failure closes the rest and throws them all.
    public static func connect(_ hosts: [MusterInventory.Host], options: RunOptions, progress: Progress) async throws -> Fleet {
        try await connect(hosts, options: options, progress: progress, thenRun: nil).fleet
    }

    /// Like `connect`, and runs `firstCommand` (privileged) on each host as soon as that host is
    /// connected, instead of after the slowest handshake; its outputs come back by host name.
    /// A host in `tolerated` that cannot be connected to is left out of the fleet (no session,
    /// no output) instead of failing the run: a host that only holds members to remove.
    static func connect(_ hosts: [MusterInventory.Host], options: RunOptions, progress: Progress,
                        thenRun firstCommand: (step: String, script: [String: String])?,
                        tolerating tolerated: Set<String> = []) async throws -> (fleet: Fleet, outputs: [String: String]) {
        do {
            try await options.checkAddresses(hosts.map(\.address))
        } catch {
            // Name the host: ask again one address at a time (only on this failure path).
            for host in hosts {
                do { try await options.checkAddresses([host.address]) } catch {
                    throw DeployError(host: host.name, step: "route", "\(error)")
                }
            }
            throw DeployError(host: nil, step: "route", "\(error)")
        }
        let jobs = hosts.map { (name: $0.name, description: "\($0.ssh.user)@\($0.address):\($0.ssh.port)", target: target(for: $0, options: options)) }
        let results = await SSH.boundedMap(jobs, parallel: options.parallel) { job -> (Result<SSHSession, Error>, Result<String, Error>?) in
            let session: SSHSession
            do {
                session = try await SSHSession.connect(job.target)
            } catch {
                if !tolerated.contains(job.name) { progress.host(job.name, "connect", "FAILED") }
                return (.failure(error), nil)
            }
            progress.host(job.name, "connect", "ok (\(job.description))")
            guard let firstCommand, let script = firstCommand.script[job.name] else { return (.success(session), nil) }
            do {
                let result = try await session.run(script, timeout: 30, privileged: true)
                return (.success(session), .success(try checked(result, host: job.name, step: firstCommand.step)))
            } catch {
                return (.success(session), .failure(error))
            }
        }
        var sessions: [String: SSHSession] = [:]
        var connectErrors: [(host: String, step: String, message: String)] = []
        var commandError: Error?
        var outputs: [String: String] = [:]
        for (job, (connection, command)) in zip(jobs, results) {
            switch connection {
            case .success(let session): sessions[job.name] = session
            case .failure(let error) where tolerated.contains(job.name):
                progress.host(job.name, "connect", "unreachable (\(error)); it only holds member(s) to remove, which go without it")
            case .failure(let error):
                // An SSHError says its own host and step: keep them once, not twice.
                let (step, message) = (error as? SSHError).map { ($0.step, $0.message) } ?? ("connect", "\(error)")
                connectErrors.append((job.name, step, message))
            }
            switch command {
            case .success(let output): outputs[job.name] = output
            case .failure(let error): if commandError == nil { commandError = error }
            case nil: break
            }
        }
        let fleet = Fleet(sessions: sessions)
        if !connectErrors.isEmpty {
            await fleet.close()
            // One host failed: name it in the error's host field (JSON), not only in its text.
            if let only = connectErrors.first, connectErrors.count == 1 {
                throw DeployError(host: only.host, step: only.step, only.message)
            }
            throw DeployError(host: nil, step: "connect", connectErrors.map { "\($0.host): \($0.step): \($0.message)" }.joined(separator: "\n"))
        }
        if let commandError {
            await fleet.close()
            throw commandError
        }
        return (fleet, outputs)
    }

    public func session(_ host: String) throws -> SSHSession {
        guard let session = open.withLock({ $0[host] }) else { throw DeployError(host: host, step: "ssh", "no session") }
        return session
    }

    /// Runs a privileged shell command; throws with stderr when it exits non-zero.
    @discardableResult
    public func check(_ host: String, _ step: String, _ command: String, stdin: Data? = nil,
                      timeout: Double? = nil, stdinWritten: (@Sendable (Int) -> Void)? = nil) async throws -> String {
        let result = try await session(host).run(command, stdin: stdin, timeout: timeout, privileged: true,
                                                  stdinWritten: stdinWritten)
        return try Self.checked(result, host: host, step: step)
    }

    static func checked(_ result: CommandResult, host: String, step: String) throws -> String {
        guard result.exitStatus == 0 else {
            let detail = result.stderrText.isEmpty ? result.stdoutText : result.stderrText
            throw DeployError(host: host, step: step,
                              "command failed (exit \(result.exitStatus)): \(detail.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdoutText
    }

    /// Closes every session once, however many callers close the fleet.
    public func close() async {
        let closing = open.withLock { sessions in
            defer { sessions = [:] }
            return sessions
        }
        for session in closing.values { await session.close() }
    }
}

func expandTilde(_ path: String) -> String {
    guard path.hasPrefix("~/") else { return path }
    return NSHomeDirectory() + path.dropFirst(1)
}

