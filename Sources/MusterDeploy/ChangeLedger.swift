import Foundation
import Synchronization

/// What a run changed on each host, for `up --output json` and the closing line.
public final class ChangeLedger: Sendable {
    public struct HostChanges: Sendable, Codable, Equatable {
        public var host: String
        public var filesWritten = 0
        public var bytesSent = 0
        public var binaries: [String] = []
        public var started: [String] = []
        public var restarted: [String] = []
        public var stopped: [String] = []
    }

    private struct Entries {
        var byHost: [String: HostChanges] = [:]
        /// Snapshots taken before changes, in order.
        var backups: [String] = []
    }
    private let entries = Mutex(Entries())

    public init() {}

    func record(_ host: String, _ change: (inout HostChanges) -> Void) {
        entries.withLock { entries in
            var entry = entries.byHost[host] ?? HostChanges(host: host)
            change(&entry)
            entries.byHost[host] = entry
        }
    }

    public var hosts: [HostChanges] {
        entries.withLock { entries in entries.byHost.keys.sorted().compactMap { entries.byHost[$0] } }
    }

    public var totalBytes: Int { hosts.reduce(0) { $0 + $1.bytesSent } }

    /// Snapshots taken before changes, in order.
    public var backups: [String] { entries.withLock { $0.backups } }

    func addBackup(_ path: String) { entries.withLock { $0.backups.append(path) } }
}
