import Foundation
import MusterInventory
import MusterSSH

/// Options a run takes from the command line.
public struct RunOptions: Sendable {
    public var acceptNewHostKeys = false
    public var parallel = 16
    /// Called with host addresses before muster connects to them (throws to refuse); the
    /// sandbox's route check plugs in here (DEVELOPERS.md network rule). Takes them all at once
    /// so that a check can look every route up in one go.
    public var addressGuard: @Sendable ([String]) throws -> Void = { _ in }
    public init() {}
}

/// One open SSH session per host, reused for every step of a run.
public final class Fleet: @unchecked Sendable {
    public private(set) var sessions: [String: SSHSession] = [:]

    public static func target(for host: MusterInventory.Host, options: RunOptions) -> SSHTarget {
        SSHTarget(name: host.name, address: host.address, port: host.ssh.port, user: host.ssh.user,
                  identityFile: host.ssh.identity.map(expandTilde),
                  knownHostsFile: expandTilde(host.ssh.knownHosts),
                  acceptNewHostKeys: options.acceptNewHostKeys,
                  connectTimeout: Double(host.ssh.connectTimeout))
    }

    /// Connects to every host in parallel; on any failure closes the rest and throws them all.
    public static func connect(_ hosts: [MusterInventory.Host], options: RunOptions, progress: Progress) async throws -> Fleet {
        do {
            try options.addressGuard(hosts.map(\.address))
        } catch {
            // Name the host: ask again one address at a time (only on this failure path).
            for host in hosts {
                do { try options.addressGuard([host.address]) } catch {
                    throw DeployError(host: host.name, step: "route", "\(error)")
                }
            }
            throw DeployError(host: nil, step: "route", "\(error)")
        }
        let targets = hosts.map { target(for: $0, options: options) }
        let results = await SSH.connectAll(targets, parallel: options.parallel)
        let fleet = Fleet()
        var errors: [String] = []
        for (host, result) in zip(hosts, results) {
            switch result {
            case .success(let session):
                fleet.sessions[host.name] = session
                progress.host(host.name, "connect", "ok (\(host.ssh.user)@\(host.address):\(host.ssh.port))")
            case .failure(let error):
                errors.append("\(error)")
                progress.host(host.name, "connect", "FAILED: \(error)")
            }
        }
        if !errors.isEmpty {
            await fleet.close()
            throw DeployError(host: nil, step: "connect", errors.joined(separator: "\n"))
        }
        return fleet
    }

    public func session(_ host: String) throws -> SSHSession {
        guard let session = sessions[host] else { throw DeployError(host: host, step: "ssh", "no session") }
        return session
    }

    /// Runs a privileged shell command; throws with stderr when it exits non-zero.
    @discardableResult
    public func check(_ host: String, _ step: String, _ command: String, stdin: Data? = nil,
                      timeout: Double? = nil) async throws -> String {
        let result = try await session(host).run(command, stdin: stdin, timeout: timeout, privileged: true)
        guard result.exitStatus == 0 else {
            let detail = result.stderrText.isEmpty ? result.stdoutText : result.stderrText
            throw DeployError(host: host, step: step,
                              "command failed (exit \(result.exitStatus)): \(detail.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdoutText
    }

    public func close() async {
        for session in sessions.values { await session.close() }
        sessions = [:]
    }
}

func expandTilde(_ path: String) -> String {
    guard path.hasPrefix("~/") else { return path }
    return NSHomeDirectory() + path.dropFirst(1)
}
