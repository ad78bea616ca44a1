import Foundation
import MusterBasics
import MusterPlan

/// What muster knows of a cluster's life, kept in `STATE/clusters/NAME.json`: the IDs it formed
/// with, each member added or removed later, the token of the last restore, the snapshots taken.
/// Written only by a run that applied what it records, so verification can trust it over the
/// plan (which only predicts founders' IDs).
public struct ClusterRecord: Sendable, Codable, Equatable {
    public struct Member: Sendable, Codable, Equatable {
        public var name: String
        /// etcd's hex, as `etcdctl member list` prints it.
        public var id: String
        public var peerURLs: [String]
        /// For a member that joined later: the `initial-cluster` it joined with.
        public var initialCluster: String?
        public init(name: String, id: String, peerURLs: [String], initialCluster: String? = nil) {
            self.name = name
            self.id = id
            self.peerURLs = peerURLs
            self.initialCluster = initialCluster
        }
    }

    public struct Snapshot: Sendable, Codable, Equatable {
        public var file: String
        public var revision: Int64
        public var sha256: String
        public var size: Int
        public var takenAt: Date
        /// The cluster (its ID, hex) and incarnation the snapshot was taken of; nil in records
        /// of an earlier muster.
        public var clusterID: String?
        public var incarnation: String?
        public init(file: String, revision: Int64, sha256: String, size: Int, takenAt: Date,
                    clusterID: String? = nil, incarnation: String? = nil) {
            self.file = file
            self.revision = revision
            self.sha256 = sha256
            self.size = size
            self.takenAt = takenAt
            self.clusterID = clusterID
            self.incarnation = incarnation
        }
    }

    public var cluster: String
    public var clusterID: String
    public var formedAt: Date
    public var founders: [Member]
    public var added: [Member] = []
    public var removed: [Member] = []
    /// Members whose peer URLs were updated since they formed or joined (a changed address):
    /// their URLs now, by name; the founders' `initial-cluster` stays as they formed. Absent
    /// from records written before muster could re-address.
    public var peerURLUpdates: [Member]?
    /// The `initial-cluster-token` of the last restore, which gave the cluster new IDs.
    public var restoreToken: String?
    public var snapshots: [Snapshot] = []
    /// A random token made when the cluster was founded, also in each member's marker: a data
    /// dir left by an earlier cluster of the same name (whose IDs, derived from the names, are
    /// the same) is told from this one's. Absent from records written before muster made one.
    public var incarnation: String?
    /// The raft index by which muster saw every member run etcd 3.6 (0: founded on 3.6). A
    /// snapshot a member wrote past it was written under 3.6, which the 3.6 -> 3.7 guard asks.
    /// Absent until muster saw the cluster on 3.6.
    public var reached36AtIndex: UInt64?

    public init(cluster: String, clusterID: String, formedAt: Date, founders: [Member], incarnation: String? = nil) {
        self.cluster = cluster
        self.clusterID = clusterID
        self.formedAt = formedAt
        self.founders = founders
        self.incarnation = incarnation
    }

    /// The members the record says the cluster has now, with their peer URLs now.
    public var members: [Member] {
        let gone = Set(removed.map(\.id))
        let updated = Dictionary((peerURLUpdates ?? []).map { ($0.id, $0.peerURLs) }, uniquingKeysWith: { _, last in last })
        return (founders + added).filter { !gone.contains($0.id) }.map { member in
            var member = member
            if let urls = updated[member.id] { member.peerURLs = urls }
            return member
        }
    }

    /// Records that member `id` (named `name`) has the peer URLs `peerURLs` now.
    public mutating func updatePeerURLs(name: String, id: String, peerURLs: [String]) {
        var updates = (peerURLUpdates ?? []).filter { $0.id != id }
        updates.append(Member(name: name, id: id, peerURLs: peerURLs))
        peerURLUpdates = updates
    }
}

extension ClusterRecord {
    /// The record as the planner reads it.
    public var history: ClusterHistory {
        let founders = self.founders.map {
            ClusterHistory.Founder(name: $0.name, peerURL: $0.peerURLs.first ?? "", id: UInt64($0.id, radix: 16) ?? 0)
        }
        let gone = Set(removed.map(\.id))
        var joined: [String: ClusterHistory.Joined] = [:]
        let now = Dictionary(members.map { ($0.id, $0.peerURLs.first ?? "") }, uniquingKeysWith: { first, _ in first })
        for member in added where !gone.contains(member.id) {
            joined[member.name] = ClusterHistory.Joined(id: UInt64(member.id, radix: 16) ?? 0, peerURL: now[member.id] ?? member.peerURLs.first ?? "",
                                                        initialCluster: member.initialCluster ?? "")
        }
        var history = ClusterHistory(clusterID: UInt64(clusterID, radix: 16) ?? 0, founders: founders, joined: joined,
                                     current: members.map { ($0.name, $0.peerURLs.first ?? "") })
        history.removedIDs = Set(removed.compactMap { UInt64($0.id, radix: 16) })
        history.restoreToken = restoreToken
        return history
    }
}

/// The state's cluster records, `STATE/clusters/NAME.json`: read, and changed only by `update`
/// (read again, changed, written by `AtomicFile`, under the state lock), so that every writer
/// (up, replace, restore, snapshot) keeps what the others wrote.
public struct ClusterRecords: Sendable {
    let state: LocalState
    private var directory: String { state.directory + "/clusters" }
    private func path(_ cluster: String) -> String { "\(directory)/\(cluster).json" }

    public func read(_ cluster: String) throws -> ClusterRecord? {
        let path = path(cluster)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(ClusterRecord.self, from: data)
        } catch {
            throw StateError(description: "\(path) is damaged: \(error) (move it away to let muster record the cluster again)")
        }
    }

    /// Changes `cluster`'s record (nil: there is none yet; set nil to remove it) and returns it
    /// as saved.
    @discardableResult
    public func update(_ cluster: String, _ change: (inout ClusterRecord?) throws -> Void) throws -> ClusterRecord? {
        try state.changing { () throws -> ClusterRecord? in
            var record = try read(cluster)
            let before = record
            try change(&record)
            guard record != before else { return record }
            if let record {
                guard record.cluster == cluster else {
                    throw StateError(description: "the record of cluster '\(cluster)' names cluster '\(record.cluster)'")
                }
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
                let encoder = JSONEncoder.sortedPretty
                encoder.dateEncodingStrategy = .iso8601
                try state.write(encoder.encode(record), to: path(cluster))
            } else {
                do { try AtomicFile.remove(path(cluster)) } catch { throw StateError(description: "\(error)") }
            }
            return record
        }
    }
}

extension LocalState {
    public var records: ClusterRecords { ClusterRecords(state: self) }

    public func clusterRecord(_ cluster: String) throws -> ClusterRecord? {
        try records.read(cluster)
    }

    public func removeClusterRecord(_ cluster: String) {
        _ = try? records.update(cluster) { $0 = nil }
        removeIncarnation(of: cluster)
    }
}
