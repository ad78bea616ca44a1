import Foundation
import Synchronization
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
///
/// Every change to a state file goes through `changing`: one at a time within this process,
/// under the state lock (the run's own, or taken for that change alone by a run that holds none,
/// like `render` saving a new token), read again, changed and written by `AtomicFile`.
public final class LocalState: Sendable {
    public let directory: String
    /// The lock file's descriptor while this run holds the lock, else -1. Its mutex also makes
    /// each read-change-write of a state file one step among this run's tasks.
    private let lockDescriptor = Mutex<Int32>(-1)

    public static func defaultDirectory(forInventory path: String) -> String {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let name = url.deletingPathExtension().lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent(".muster/\(name)").path
    }

    /// `create: false` reads what is there (a missing directory reads as empty) and makes
    /// nothing until `create()`, a lock or a write.
    public init(directory: String, create: Bool = true) throws {
        self.directory = directory
        if create { try self.create() }
    }

    /// Makes the directory (mode 0700) if it is missing.
    public func create() throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        chmod(directory, 0o700)
    }

    deinit { unlock() }

    /// Takes the inventory's lock, failing at once (not waiting) when another run holds it.
    public func lock() throws {
        try create()
        try lockDescriptor.withLock { held in
            guard held < 0 else { return }
            held = try acquire()
        }
    }

    public func unlock() {
        lockDescriptor.withLock { held in
            if held >= 0 {
                close(held)
                held = -1
            }
        }
    }

    private func acquire() throws -> Int32 {
        let path = directory + "/lock"
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StateError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw StateError(.refused, "another muster run holds the lock \(path) (state dir \(directory)); wait for it to finish")
        }
        return descriptor
    }

    /// Runs `change` (which reads, changes and writes state files) alone among this process's
    /// changes and under the state lock: the run's if it holds it, else taken for this change.
    func changing<T: Sendable>(_ change: () throws -> T) throws -> T {
        try create()
        return try lockDescriptor.withLock { held throws -> T in
            if held >= 0 { return try change() }
            let descriptor = try acquire()
            defer { close(descriptor) }
            return try change()
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

    /// Changes the saved tokens as `change` says, on what is saved now (another cluster of the
    /// same wave may have saved its token a moment ago); returns them as saved.
    @discardableResult
    public func updateDiscoveryTokens(_ change: (inout [String: DiscoveryToken]) throws -> Void) throws -> [String: DiscoveryToken] {
        try changing { () throws -> [String: DiscoveryToken] in
            var tokens = try discoveryTokens()
            let before = tokens
            try change(&tokens)
            if tokens != before { try write(JSONEncoder.sortedPretty.encode(tokens), to: tokensPath) }
            return tokens
        }
    }

    /// Replaces every saved token (`updateDiscoveryTokens` changes some of them).
    public func saveDiscoveryTokens(_ tokens: [String: DiscoveryToken]) throws {
        try updateDiscoveryTokens { $0 = tokens }
    }

    /// `AtomicFile.write`, as a state error. Callers hold `changing`.
    func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        do { try AtomicFile.write(data, to: path, mode: mode) } catch {
            throw StateError(description: error.description)
        }
    }

    /// A fresh discovery token, as `uuidgen` would make one.
    public static func newToken() -> String { UUID().uuidString.lowercased() }
}
