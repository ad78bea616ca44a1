import Foundation
import MusterBasics

/// The member binary (and etcdctl) as shipped: hashed once per run, sent as a zstd copy (about a
/// third of the bytes) to every host that has zstd, as is to the others.
struct ShippedBinary: Sendable {
    var localPath: String
    var remotePath: String
    var sha256: String
    var size: Int
    /// The controller's cached zstd copy, when zstd is there to make one.
    var compressedPath: String?

    init(localPath: String, remotePath: String) throws {
        self.localPath = localPath
        self.remotePath = remotePath
        sha256 = try Digest.sha256Hex(fileAt: localPath)
        size = (try FileManager.default.attributesOfItem(atPath: localPath)[.size] as? Int) ?? 0
    }

    var fileName: String { (remotePath as NSString).lastPathComponent }

    func isCurrent(on facts: HostFacts) -> Bool {
        facts.files[remotePath]?.sha256 == sha256 && facts.files[remotePath]?.mode == "755"
    }
}

/// A binary for the hosts of the clusters that use it: a member binary rides each host's first
/// apply, a tool (etcdctl) follows once members are starting.
struct Shipment: Sendable {
    struct Source: Sendable {
        var local: String
        var remote: String
        var hosts: Set<String>
        var isMember: Bool
    }
    var binary: ShippedBinary
    var hosts: Set<String>
    var isMember: Bool
}

/// A binary on its way to one host, streamed through the stdin of a command that unpacks (or
/// copies) it beside its target and renames it into place.
struct BinaryDelivery: Sendable {
    var binary: ShippedBinary
    var payload: Data
    var compressed: Bool

    /// Loads each binary's payloads once for all hosts: the zstd copy for hosts that can unpack
    /// it, the binary as is for the others.
    static func plan(_ binary: ShippedBinary, for hosts: [String], facts: [String: HostFacts]) throws -> [String: BinaryDelivery] {
        var loaded: [String: Data] = [:]
        func payload(_ path: String) throws -> Data {
            if let data = loaded[path] { return data }
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
            loaded[path] = data
            return data
        }
        var deliveries: [String: BinaryDelivery] = [:]
        for host in hosts {
            let packed = facts[host]?.hasZstd == true ? binary.compressedPath : nil
            deliveries[host] = BinaryDelivery(binary: binary, payload: try payload(packed ?? binary.localPath),
                                              compressed: packed != nil)
        }
        return deliveries
    }

    var summary: String {
        "\(binary.fileName) (\(payload.count / 1024) KiB\(compressed ? " as zstd" : ""))"
    }
}

/// zstd copies of shipped binaries on the controller, named by the original's SHA-256, so each
/// binary is compressed once rather than on every run. A copy is kept only once it unpacks to
/// that hash, and is then sealed: `NAME.zst.sha256` holds the SHA-256 of the copy's own bytes.
/// Before every use the copy is hashed against its seal (7.5 MB, a few milliseconds in-process,
/// where unpacking and hashing 21.5 MB cost 0.2 s of every run): a copy altered in place, even
/// into a valid zstd frame of other bytes, no longer matches and is made anew. What a host
/// receives is checked again there, against the binary's own hash, before it replaces anything.
enum BinaryCache {
    /// `$MUSTER_CACHE_DIR`, else `$XDG_CACHE_HOME/muster`, else `~/.cache/muster`.
    static var directory: String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["MUSTER_CACHE_DIR"], !explicit.isEmpty { return explicit }
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache"
        return base + "/muster"
    }

    /// The cached copy's path, made now if missing; nil when zstd is not on the controller or the
    /// cache is not writable (the binary then travels as is).
    static func compressedCopy(of binary: ShippedBinary, cache: String = directory) async -> String? {
        let folder = cache + "/binaries"
        let path = "\(folder)/\(binary.sha256).zst"
        if FileManager.default.fileExists(atPath: path) {
            if await isSealed(path) { return path }
            // A copy from before seals, or one that changed: trusted only by what it unpacks to.
            if await unpacks(path, to: binary.sha256), await seal(path, as: path) { return path }
            try? FileManager.default.removeItem(atPath: path)
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let partial = "\(path).\(getpid()).partial"
            defer { try? FileManager.default.removeItem(atPath: partial) }
            let made = try await LocalProcess.runOffPool(["zstd", "-q", "-3", "-f", binary.localPath, "-o", partial], timeout: 120)
            guard made.succeeded else { return nil }
            // The copy is named by the hash taken earlier: it must unpack to exactly those bytes
            // (the binary could have been replaced in between), or it is not kept.
            guard await unpacks(partial, to: binary.sha256), await seal(partial, as: path),
                  rename(partial, path) == 0 else { return nil }
            return path
        } catch {
            return nil
        }
    }

    static func sealPath(of path: String) -> String { path + ".sha256" }

    /// Whether the copy at `path` still has the bytes its seal was made of.
    static func isSealed(_ path: String) async -> Bool {
        guard let sealed = try? String(contentsOfFile: sealPath(of: path), encoding: .utf8),
              let actual = try? await offPool({ try Digest.sha256Hex(fileAt: path) }) else { return false }
        return sealed.trimmingCharacters(in: .whitespacesAndNewlines) == actual
    }

    /// Writes the seal of the copy at `source` for the copy's final `path`, whole or not at all.
    static func seal(_ source: String, as path: String) async -> Bool {
        guard let hash = try? await offPool({ try Digest.sha256Hex(fileAt: source) }) else { return false }
        let target = sealPath(of: path), partial = "\(target).\(getpid()).partial"
        guard (try? Data((hash + "\n").utf8).write(to: URL(fileURLWithPath: partial))) != nil else { return false }
        guard rename(partial, target) == 0 else {
            try? FileManager.default.removeItem(atPath: partial)
            return false
        }
        return true
    }

    /// Whether the zstd file at `path` unpacks to bytes with SHA-256 `sha256`.
    static func unpacks(_ path: String, to sha256: String) async -> Bool {
        // A zstd failure part way leaves the sum of fewer bytes, which cannot match.
        let script = "zstd -q -d -c -- \"$1\" | sha256sum"
        guard let result = try? await LocalProcess.runOffPool(["/bin/sh", "-c", script, "sh", path], timeout: 120)
        else { return false }
        return result.succeeded && result.stdoutText.hasPrefix(sha256 + " ")
    }
}

/// Gets hosts ready for their members, each as fast as its own SSH lane allows. A host's first
/// apply command carries the member binary on its stdin (measured on the sandbox: a command's
/// stdin moves bytes about twice as fast as libssh2's SFTP on a fresh connection), and a member
/// can start as soon as its own host is done, while others are still receiving.
actor HostPreparation {
    private let fleet: Fleet
    private let facts: [String: HostFacts]
    private let ledger: ChangeLedger
    private let progress: Progress
    private var deliveries: [String: [BinaryDelivery]] = [:]
    private var applying: [String: Task<Void, Error>] = [:]
    private var tools: Task<Void, Error>?
    /// Bytes, rate and time left of every binary going out (drawn only on a terminal).
    private var meter: TransferMeter?

    init(fleet: Fleet, facts: [String: HostFacts], ledger: ChangeLedger, progress: Progress) {
        self.fleet = fleet
        self.facts = facts
        self.ledger = ledger
        self.progress = progress
    }

    /// Makes each member binary ride along with the first apply on each of its hosts that lacks
    /// it (a host whose clusters run two versions gets the second before that apply).
    func deliver(_ binaries: [Shipment]) throws {
        for shipment in binaries {
            let binary = shipment.binary, hosts = shipment.hosts
            let lacking = hosts.sorted().filter { host in
                let missing = facts[host].map { !binary.isCurrent(on: $0) } ?? true
                if !missing { progress.host(host, "binary", "\(binary.fileName) unchanged") }
                return missing
            }
            for (host, delivery) in try BinaryDelivery.plan(binary, for: lacking, facts: facts) {
                deliveries[host, default: []].append(delivery)
            }
        }
        let hosts = deliveries.filter { !$0.value.isEmpty }
        let bytes = hosts.values.joined().reduce(0) { $0 + $1.payload.count }
        if bytes > 0 {
            meter = TransferMeter.forTerminal(label: "binaries to \(hosts.count) host\(hosts.count == 1 ? "" : "s")",
                                              total: Int64(bytes), machineOutput: progress.isQuiet)
        }
    }

    /// Runs `script` on `host` (with the member binary, the first time); a host in several
    /// waves applies in order.
    func apply(_ script: ApplyScript, on host: String, label: String) {
        let previous = applying[host]
        let pending = deliveries.removeValue(forKey: host) ?? []
        let delivery = pending.first, others = pending.dropFirst()
        let fleet = fleet, ledger = ledger, progress = progress
        var sent: (@Sendable (Int) -> Void)?
        if !pending.isEmpty, let meter {
            sent = { bytes in meter.advance(by: bytes) }
        }
        applying[host] = Task {
            try await previous?.value
            // A script takes one binary (it reads all of stdin): any other rides a script of its own.
            for other in others {
                var alone = ApplyScript()
                alone.receive(other)
                try await fleet.check(host, "apply", alone.text, stdin: alone.input, timeout: 300, stdinWritten: sent)
                ledger.record(host) { change in
                    change.bytesSent += other.payload.count
                    change.binaries.append(other.binary.fileName)
                }
                progress.host(host, "files", other.summary)
            }
            var script = script
            if let delivery { script.receive(delivery) }
            guard !script.isEmpty else {
                if !label.isEmpty { progress.host(host, "files", label) }
                return
            }
            do {
                try await fleet.check(host, "apply", script.text, stdin: script.input, timeout: 300, stdinWritten: sent)
            } catch let error as DeployError where delivery?.compressed == true && error.message.contains("zstd") {
                throw DeployError(host: host, step: "apply", error.message + "\n(if zstd calls the data damaged, remove the cached copy \(delivery?.binary.compressedPath ?? "") and run again)")
            }
            ledger.record(host) { change in
                change.bytesSent += script.bytes + (delivery?.payload.count ?? 0)
                change.filesWritten += script.fileCount
                if let delivery { change.binaries.append(delivery.binary.fileName) }
            }
            progress.host(host, "files", ([delivery?.summary].compactMap { $0 } + (label.isEmpty ? [] : [label])).joined(separator: ", "))
        }
    }

    /// Returns once `host` has everything the current wave wrote for it.
    func ready(_ host: String) async throws {
        try await applying[host]?.value
    }

    /// etcdctl for operators, off the critical path (members already starting).
    func shipTools(_ binaries: [Shipment]) throws {
        guard tools == nil else { return }
        var jobs: [String: [BinaryDelivery]] = [:]
        for shipment in binaries {
            let binary = shipment.binary, hosts = shipment.hosts
            let lacking = hosts.filter { host in facts[host].map { !binary.isCurrent(on: $0) } ?? true }
            for (host, delivery) in try BinaryDelivery.plan(binary, for: lacking.sorted(), facts: facts) {
                jobs[host, default: []].append(delivery)
            }
        }
        guard !jobs.isEmpty else { return }
        let fleet = fleet, ledger = ledger, progress = progress
        tools = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (host, deliveries) in jobs {
                    group.addTask {
                        for delivery in deliveries {
                            var script = ApplyScript()
                            script.receive(delivery)
                            try await fleet.check(host, "tools", script.text, stdin: script.input, timeout: 300)
                            ledger.record(host) { change in
                                change.bytesSent += delivery.payload.count
                                change.binaries.append(delivery.binary.fileName)
                            }
                            progress.host(host, "tools", delivery.summary)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Waits for every apply and transfer started, throwing the first failure.
    func finish() async throws {
        for task in Array(applying.values) { try await task.value }
        try await tools?.value
    }

    /// After a failure: lets what is running end before the sessions close.
    func abandon() async {
        tools?.cancel()
        _ = await tools?.result
        for task in applying.values { _ = await task.result }
    }
}
