import Foundation

/// One host to reach over SSH.
public struct SSHTarget: Sendable {
    /// Inventory host name, used in errors.
    public var name: String
    /// IP address or DNS name.
    public var address: String
    public var port: Int
    public var user: String
    /// ed25519 or ECDSA private key (OpenSSH or PEM format). Its passphrase, when encrypted, comes
    /// from the environment variable `MUSTER_SSH_PASSPHRASE`.
    public var identityFile: String?
    /// The ssh-agent socket; defaults to `SSH_AUTH_SOCK`. Nil or empty: no agent.
    public var agentSocket: String?
    /// OpenSSH known_hosts file, plain or hashed entries.
    public var knownHostsFile: String
    /// Like `StrictHostKeyChecking=accept-new`: record unknown keys, still refuse changed ones.
    public var acceptNewHostKeys: Bool
    /// False on `--dry-run`: a key accepted as new is trusted for this run but not written.
    public var recordHostKeys: Bool
    /// Seconds for TCP connect, SSH handshake and authentication together.
    public var connectTimeout: Double
    /// Default seconds for one command or upload.
    public var commandTimeout: Double
    /// Seconds between keepalive messages on an idle session.
    public var keepaliveInterval: Int

    public init(
        name: String, address: String, port: Int = 22, user: String = "root",
        identityFile: String? = nil,
        agentSocket: String? = ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"],
        knownHostsFile: String = NSHomeDirectory() + "/.ssh/known_hosts",
        acceptNewHostKeys: Bool = false, recordHostKeys: Bool = true, connectTimeout: Double = 10,
        commandTimeout: Double = 120, keepaliveInterval: Int = 30
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.agentSocket = agentSocket
        self.knownHostsFile = knownHostsFile
        self.acceptNewHostKeys = acceptNewHostKeys
        self.recordHostKeys = recordHostKeys
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.keepaliveInterval = keepaliveInterval
    }

    /// `address` for port 22, else `[address]:port`: how known_hosts names the host.
    public var knownHostsName: String { port == 22 ? address : "[\(address)]:\(port)" }
}

/// What a remote command produced.
public struct CommandResult: Sendable {
    /// What one command may print: muster's commands print facts and short reports, never bulk.
    public static let maxStdoutBytes = 64 << 20
    public static let maxStderrBytes = 1 << 20
    public var stdout: Data
    public var stderr: Data
    /// The exit status; -1 when the command was killed by a signal (see `exitSignal`).
    public var exitStatus: Int32
    /// Signal name without `SIG` (`TERM`, `KILL`), when the command died by a signal.
    public var exitSignal: String?

    public init(stdout: Data, stderr: Data, exitStatus: Int32, exitSignal: String?) {
        self.stdout = stdout
        self.stderr = stderr
        self.exitStatus = exitStatus
        self.exitSignal = exitSignal
    }

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var succeeded: Bool { exitStatus == 0 && exitSignal == nil }
}

public struct UploadResult: Sendable {
    /// The remote file already had the same SHA-256: nothing was written.
    public var skipped: Bool
    /// Payload bytes written over SFTP (0 when skipped).
    public var bytesSent: Int

    public init(skipped: Bool, bytesSent: Int) {
        self.skipped = skipped
        self.bytesSent = bytesSent
    }
}

/// The one error MusterSSH throws: which host, which step, what happened (with libssh2's own
/// message when it had one).
public struct SSHError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case connect, timeout, hostKeyUnknown, hostKeyChanged, hostKeyRevoked, hostKey, auth, exec, upload,
             sudoNeedsPassword, tunnel, closed, commandFailed
    }

    public var host: String
    public var step: String
    public var kind: Kind
    public var message: String

    public init(host: String, step: String, kind: Kind, message: String) {
        self.host = host
        self.step = step
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(host): \(step): \(message)" }
}
