import Foundation
import MusterBasics
import MusterPlan

public struct StateError: ClassifiedError {
    public var kind = FailureKind.host
    public var message: String
    public var description: String { message }
    init(description: String) { message = description }
    init(_ kind: FailureKind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// What must outlive a run, per inventory: `.muster/NAME/` beside the inventory (mode 0700),
/// or the `--state` directory. A lock file keeps two runs on one inventory from interleaving.
public final class LocalState: @unchecked Sendable {
    public let directory: String
    private var lockDescriptor: Int32 = -1

    public static func defaultDirectory(forInventory path: String) -> String {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let name = url.deletingPathExtension().lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent(".muster/\(name)").path
    }

    /// `create: false` reads what is there (a missing directory reads as empty) and makes nothing.
    public init(directory: String, create: Bool = true) throws {
        self.directory = directory
        guard create else { return }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        chmod(directory, 0o700)
    }

    deinit { unlock() }

    /// Takes the inventory's lock, failing at once (not waiting) when another run holds it.
    public func lock() throws {
        let path = directory + "/lock"
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StateError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw StateError(.refused, "another muster run holds the lock \(path) (state dir \(directory)); wait for it to finish")
        }
        lockDescriptor = descriptor
    }

    public func unlock() {
        if lockDescriptor >= 0 {
            close(lockDescriptor)
            lockDescriptor = -1
        }
    }

    private var tokensPath: String { directory + "/discovery-tokens.json" }

    public func discoveryTokens() throws -> [String: DiscoveryToken] {
        guard let data = FileManager.default.contents(atPath: tokensPath) else { return [:] }
        do {
            return try JSONDecoder().decode([String: DiscoveryToken].self, from: data)
        } catch {
            throw StateError(description: "\(tokensPath) is damaged: \(error)")
        }
    }

    public func saveDiscoveryTokens(_ tokens: [String: DiscoveryToken]) throws {
        try write(JSONEncoder.sortedPretty.encode(tokens), to: tokensPath)
    }

    /// Writes through a temporary file and a rename, so a killed run never leaves half a file.
    public func write(_ data: Data, to path: String, mode: Int = 0o600) throws {
        let temporary = path + ".tmp.\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data,
                                             attributes: [.posixPermissions: mode]) else {
            throw StateError(description: "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            throw StateError(description: "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// A fresh discovery token, as `uuidgen` would make one.
    public static func newToken() -> String { UUID().uuidString.lowercased() }
}

