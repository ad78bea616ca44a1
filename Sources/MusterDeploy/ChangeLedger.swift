import Foundation

/// What a run changed on each host, for `up --output json` and the closing line.
public final class ChangeLedger: @unchecked Sendable {
    public struct HostChanges: Sendable, Codable, Equatable {
        public var host: String
        public var filesWritten = 0
        public var bytesSent = 0
        public var binaries: [String] = []
        public var started: [String] = []
        public var restarted: [String] = []
        public var stopped: [String] = []
    }

    private let lock = NSLock()
    private var byHost: [String: HostChanges] = [:]

    public init() {}

    func record(_ host: String, _ change: (inout HostChanges) -> Void) {
        lock.lock(); defer { lock.unlock() }
        var entry = byHost[host] ?? HostChanges(host: host)
        change(&entry)
        byHost[host] = entry
    }

    public var hosts: [HostChanges] {
        lock.lock(); defer { lock.unlock() }
        return byHost.keys.sorted().compactMap { byHost[$0] }
    }

    public var totalBytes: Int { hosts.reduce(0) { $0 + $1.bytesSent } }

    private var backupPaths: [String] = []
    /// Snapshots taken before changes, in order.
    public var backups: [String] { lock.lock(); defer { lock.unlock() }; return backupPaths }

    func addBackup(_ path: String) { lock.lock(); backupPaths.append(path); lock.unlock() }
}
