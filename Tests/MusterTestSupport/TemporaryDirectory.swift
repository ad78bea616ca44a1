import Foundation

/// A fresh directory under the system temporary directory, named `PREFIX-XXXXXXXX` so that a
/// leftover one says which tests made it.
///
/// `TemporaryDirectory(prefix:)` owns its directory and removes it when released; keep the
/// object (not just its `path`) alive for as long as the directory is used.
/// `TemporaryDirectory.create(prefix:)` only makes one and hands back its path, for harnesses
/// that decide themselves when to remove it (some keep it, and the logs in it, when a test fails).
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String) throws {
        path = try Self.create(prefix: prefix)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Creates the directory and returns its path; removing it is the caller's business.
    public static func create(prefix: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
