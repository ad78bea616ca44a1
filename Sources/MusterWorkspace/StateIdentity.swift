import Foundation
import MusterBasics

/// Who a state dir is to the hosts it manages: a random ID made once (`STATE/identity`) and
/// written, with the dir's path, into the marker of every member muster starts. A run from
/// another state dir (a copied or moved inventory gets one of its own) is then told apart before
/// it writes anything, and the refusal can name the state dir the hosts point to. The ID, not
/// the path, is what is compared: a state dir moved by hand and named with `--state` is the same.
public struct StateIdentity: Sendable, Equatable {
    public var id: String
    public var directory: String

    public init(id: String, directory: String) {
        self.id = id
        self.directory = directory
    }

    /// Sixteen random bytes in hex: what muster makes for a state dir and for each incarnation
    /// of a cluster.
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// A token as muster makes them: safe on a marker's line and in a message.
    public static func isToken(_ text: String) -> Bool {
        text.count == 32 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}

extension LocalState {
    private var identityPath: String { directory + "/identity" }

    /// This state dir's identity, or nil when no run has made one yet.
    public func identity() throws -> StateIdentity? {
        guard let data = FileManager.default.contents(atPath: identityPath) else { return nil }
        let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard StateIdentity.isToken(id) else {
            throw StateError(description: "\(identityPath) is damaged (not a muster state ID): restore it from a backup of the state dir")
        }
        return StateIdentity(id: id, directory: directory)
    }

    /// The identity kept in the state, or a new one that `save(_:)` keeps once the run may write.
    public func identityOrNew() throws -> (identity: StateIdentity, isNew: Bool) {
        if let identity = try identity() { return (identity, false) }
        return (StateIdentity(id: StateIdentity.newToken(), directory: directory), true)
    }

    public func save(_ identity: StateIdentity) throws {
        try changing { try write(Data((identity.id + "\n").utf8), to: identityPath) }
    }

    private func incarnationPath(_ cluster: String) -> String { directory + "/clusters/\(cluster).incarnation" }

    /// The token of the cluster's present incarnation: the record's, or (before the first
    /// verified run recorded it, or for a cluster an earlier muster recorded and a restore gave
    /// one) the one saved when its members were first started. Nil for a cluster recorded by an
    /// earlier muster, whose markers carry none either.
    public func incarnation(of cluster: String) throws -> String? {
        if let token = try clusterRecord(cluster)?.incarnation { return token }
        guard let data = FileManager.default.contents(atPath: incarnationPath(cluster)) else { return nil }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return StateIdentity.isToken(token) ? token : nil
    }

    /// Keeps the token of a cluster that has no record yet, before its first member starts.
    public func saveIncarnation(_ token: String, of cluster: String) throws {
        try changing {
            try FileManager.default.createDirectory(atPath: directory + "/clusters", withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try write(Data((token + "\n").utf8), to: incarnationPath(cluster))
        }
    }

    func removeIncarnation(of cluster: String) {
        _ = try? changing { try AtomicFile.remove(incarnationPath(cluster)) }
    }
}
