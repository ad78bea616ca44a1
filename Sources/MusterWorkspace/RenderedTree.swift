import Foundation
import MusterBasics
import MusterPlan

/// Writes rendered files under `DIR/HOST/PATH`, mirroring each host's filesystem, and removes
/// only the files an earlier render of the same tree wrote (listed in a manifest): regular files
/// inside `DIR`, never through a symbolic link.
public enum RenderedTree {
    static let manifestName = ".muster-rendered"

    /// Writes the files `plan` holds, then `plan.txt`, `plan.json` and the manifest.
    @discardableResult
    public static func write(_ plan: Plan, to directory: String, summary: String, json: Data) throws -> [String] {
        let previous = try prepare(directory)
        var made = Set<String>()
        var written: [String] = []
        for file in plan.files {
            let relative = "\(file.host)\(file.path)"
            try writeFile(Data(file.contents.utf8), at: "\(directory)/\(relative)", mode: file.mode, madeDirectories: &made)
            written.append(relative)
        }
        return try finish(directory, written: written, previous: previous, summary: summary, made: &made) { emit in
            json.withUnsafeBytes(emit)
        }
    }

    /// What `render` writes: `plan.clusters` rendered by `renderer`, each file written as soon as
    /// it is rendered and dropped (the tree of 500 clusters is never held whole), clusters side
    /// by side on `lanes` threads (the kernel's directory and inode creation, most of a large
    /// render on ext4, runs on every core). The result does not depend on the lanes: files are
    /// listed in plan order, and two clusters never write the same file (their paths carry the
    /// cluster's name; should two ever meet, those clusters are written again one after the
    /// other in plan order, so the later one wins as in a serial render, and both stay listed).
    /// `plan.json` is streamed to its file; `files` is its list, for a caller that prints it
    /// again (`PlanSummary.json(plan, files:)`). On an error the manifest still lists every file
    /// this run wrote, so the next render can remove them.
    /// `extras`: files of the controller's own (`prometheus/...`), at paths relative to `directory`.
    public static func write(rendering plan: Plan, with renderer: Renderer, to directory: String, summary: String,
                             extras: [(path: String, contents: String)] = [],
                             lanes: Int = defaultLanes) throws -> (written: [String], files: [FileEntry]) {
        let previous = try prepare(directory)
        let clusters = plan.clusters
        let work = Lanes(count: clusters.count)
        let laneCount = max(1, min(lanes, clusters.count))
        DispatchQueue.concurrentPerform(iterations: laneCount) { _ in
            var made = Set<String>()
            while let index = work.next() {
                var entries: [FileEntry] = []
                do {
                    for file in try renderer.files(for: clusters[index]) {
                        try writeFile(file.contents, at: "\(directory)/\(file.host)\(file.path)", mode: file.mode, madeDirectories: &made)
                        entries.append(file.entry)
                    }
                    work.finish(index, entries)
                } catch {
                    work.fail(index, entries, error)
                }
            }
        }
        let entries = work.entries.flatMap { $0 }
        var written = entries.map { "\($0.host)\($0.path)" }
        var made = Set<String>()
        if work.firstError == nil {
            for extra in extras {
                try writeFile(extra.contents, at: "\(directory)/\(extra.path)", mode: 0o644, madeDirectories: &made)
                written.append(extra.path)
            }
        }
        if let (_, error) = work.firstError {
            try? writeManifest(Array(Set(previous).union(written)).sorted(), in: directory, made: &made)
            throw error
        }
        if Set(written).count != written.count {
            try rewriteMeetingClusters(clusters, entries: work.entries, renderer: renderer, directory: directory, made: &made)
        }
        let paths = try finish(directory, written: written, previous: previous, summary: summary, made: &made) { emit in
            PlanSummary.json(plan, files: entries, chunks: emit)
        }
        return (paths, entries)
    }

    /// Two cores here; more lanes than cores only wait on each other's locks in the kernel.
    public static var defaultLanes: Int { min(ProcessInfo.processInfo.activeProcessorCount, 8) }

    private static func rewriteMeetingClusters(_ clusters: [ClusterPlan], entries: [[FileEntry]], renderer: Renderer,
                                               directory: String, made: inout Set<String>) throws {
        var owners: [String: [Int]] = [:]
        for (index, files) in entries.enumerated() {
            for file in files { owners["\(file.host)\(file.path)", default: []].append(index) }
        }
        let meeting = Set(owners.values.filter { $0.count > 1 }.joined()).sorted()
        for index in meeting {
            for file in try renderer.files(for: clusters[index]) {
                try writeFile(file.contents, at: "\(directory)/\(file.host)\(file.path)", mode: file.mode, madeDirectories: &made)
            }
        }
    }

    /// Makes `directory` and reads the manifest of the render before.
    private static func prepare(_ directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let manifestPath = "\(directory)/\(manifestName)"
        return (try? String(contentsOfFile: manifestPath, encoding: .utf8))?
            .split(separator: "\n").map(String.init) ?? []
    }

    /// `plan.txt`, `plan.json`, the stale files of the render before removed, the new manifest.
    private static func finish(_ directory: String, written: [String], previous: [String], summary: String,
                               made: inout Set<String>, json: ((UnsafeRawBufferPointer) -> Void) -> Void) throws -> [String] {
        try writeFile(summary, at: "\(directory)/plan.txt", mode: 0o644, madeDirectories: &made)
        try writeFile(at: "\(directory)/plan.json", mode: 0o644, madeDirectories: &made, json)
        let all = written + ["plan.txt", "plan.json"]
        for stale in Set(previous).subtracting(all) where isRemovable(stale, under: directory) {
            unlink("\(directory)/\(stale)")
        }
        try writeManifest(all, in: directory, made: &made)
        return all.map { "\(directory)/\($0)" }
    }

    private static func writeManifest(_ entries: [String], in directory: String, made: inout Set<String>) throws {
        try writeFile(entries.joined(separator: "\n") + "\n", at: "\(directory)/\(manifestName)", mode: 0o644, madeDirectories: &made)
    }

    /// `mkdir -p` with one mkdir(2) per directory not made yet: the tree of a 1,500-member
    /// render has 9,000 directories, and FileManager's version stats every component of every
    /// path again. Another lane making the same directory at the same time is fine (EEXIST).
    private static func makeDirectories(_ path: String, made: inout Set<String>) throws {
        guard !path.isEmpty, path != "/", !made.contains(path) else { return }
        try makeDirectories(parentPath(of: path), made: &made)
        if mkdir(path, 0o755) != 0 {
            guard errno == EEXIST else {
                throw StateError(description: "cannot make \(path): \(String(cString: strerror(errno)))")
            }
            var status = stat()
            guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw StateError(description: "cannot make \(path): it exists and is not a directory")
            }
        }
        made.insert(path)
    }

    /// `path` without its last component ("" for a bare name); a doubled slash or `.` left in
    /// is resolved by mkdir(2) itself (NSString's version, which tidies them first, was 7% of a
    /// large render).
    static func parentPath(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return slash == path.utf8.startIndex ? "/" : String(path[..<slash])
    }

    /// A manifest entry may name only a regular file below `directory`, reached without
    /// following a symbolic link on the way.
    static func isRemovable(_ relative: String, under directory: String) -> Bool {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty, !relative.hasPrefix("/"), !parts.contains(where: { $0 == ".." || $0 == "." }) else { return false }
        var path = directory
        for (index, part) in parts.enumerated() {
            path += "/" + part
            var status = stat()
            guard lstat(path, &status) == 0 else { return false }
            let type = status.st_mode & S_IFMT
            if index == parts.count - 1 { return type == S_IFREG }
            guard type == S_IFDIR else { return false }
        }
        return false
    }

    private static func writeFile(_ text: String, at path: String, mode: Int, madeDirectories: inout Set<String>) throws {
        var text = text
        try text.withUTF8 { bytes in
            try writeFile(UnsafeRawBufferPointer(bytes), at: path, mode: mode, madeDirectories: &madeDirectories)
        }
    }

    private static func writeFile(_ data: Data, at path: String, mode: Int, madeDirectories: inout Set<String>) throws {
        try data.withUnsafeBytes { bytes in
            try writeFile(bytes, at: path, mode: mode, madeDirectories: &madeDirectories)
        }
    }

    private static func writeFile(_ buffer: UnsafeRawBufferPointer, at path: String, mode: Int, madeDirectories: inout Set<String>) throws {
        try writeFile(at: path, mode: mode, madeDirectories: &madeDirectories) { emit in emit(buffer) }
    }

    /// Written beside and renamed over, so a reader never sees half a file; not synced to disk:
    /// a rendered tree is for reading and can be rendered again (measured: an fsync per file was
    /// most of a 500-cluster render's time). Each directory is made once per render.
    /// `contents` hands its bytes to the function it is given, in one piece or several.
    private static func writeFile(at path: String, mode: Int, madeDirectories: inout Set<String>,
                                  _ contents: ((UnsafeRawBufferPointer) -> Void) -> Void) throws {
        try makeDirectories(parentPath(of: path), made: &madeDirectories)
        let temporary = path + ".muster-tmp"
        let descriptor = open(temporary, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard descriptor >= 0 else { throw StateError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var complete = true
        contents { buffer in
            if complete, AtomicFile.writeAll(descriptor, buffer) != nil { complete = false }
        }
        fchmod(descriptor, mode_t(mode))
        close(descriptor)
        guard complete, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StateError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// The clusters the lanes take one by one, and what each wrote, in plan order.
private final class Lanes: @unchecked Sendable {
    private let lock = NSLock()
    private var nextIndex = 0
    private let count: Int
    private var stopped = false
    private(set) var entries: [[FileEntry]]
    private(set) var firstError: (Int, Error)?

    init(count: Int) {
        self.count = count
        entries = Array(repeating: [], count: count)
    }

    func next() -> Int? {
        lock.withLock {
            guard !stopped, nextIndex < count else { return nil }
            defer { nextIndex += 1 }
            return nextIndex
        }
    }

    func finish(_ index: Int, _ written: [FileEntry]) {
        lock.withLock { entries[index] = written }
    }

    /// The error of the earliest cluster in plan order is the one reported.
    func fail(_ index: Int, _ written: [FileEntry], _ error: Error) {
        lock.withLock {
            entries[index] = written
            stopped = true
            if firstError.map({ index < $0.0 }) ?? true { firstError = (index, error) }
        }
    }
}
