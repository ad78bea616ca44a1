import Foundation
import MusterPlan

/// Writes rendered files under `DIR/HOST/PATH`, mirroring each host's filesystem, and removes
/// only the files an earlier render of the same tree wrote (listed in a manifest): regular files
/// inside `DIR`, never through a symbolic link.
public enum RenderedTree {
    static let manifestName = ".muster-rendered"

    @discardableResult
    public static func write(_ plan: Plan, to directory: String, summary: String, json: Data) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let manifestPath = "\(directory)/\(manifestName)"
        let previous = (try? String(contentsOfFile: manifestPath, encoding: .utf8))?
            .split(separator: "\n").map(String.init) ?? []
        var written: [String] = []
        var made = Set<String>()
        for file in plan.files {
            let relative = "\(file.host)\(file.path)"
            try writeFile(Data(file.contents.utf8), at: "\(directory)/\(relative)", mode: file.mode, madeDirectories: &made)
            written.append(relative)
        }
        try writeFile(Data(summary.utf8), at: "\(directory)/plan.txt", mode: 0o644, madeDirectories: &made)
        try writeFile(json, at: "\(directory)/plan.json", mode: 0o644, madeDirectories: &made)
        written += ["plan.txt", "plan.json"]
        for stale in Set(previous).subtracting(written) where isRemovable(stale, under: directory) {
            unlink("\(directory)/\(stale)")
        }
        try writeFile(Data((written.joined(separator: "\n") + "\n").utf8), at: manifestPath, mode: 0o644, madeDirectories: &made)
        return written.map { "\(directory)/\($0)" }
    }

    /// `mkdir -p` with one mkdir(2) per directory not made yet: the tree of a 1,500-member
    /// render has 9,000 directories, and FileManager's version stats every component of every
    /// path again.
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

    /// Written beside and renamed over, so a reader never sees half a file; not synced to disk:
    /// a rendered tree is for reading and can be rendered again (measured: an fsync per file was
    /// most of a 500-cluster render's time). Each directory is made once per render.
    private static func writeFile(_ data: Data, at path: String, mode: Int, madeDirectories: inout Set<String>) throws {
        try makeDirectories(parentPath(of: path), made: &madeDirectories)
        let temporary = path + ".muster-tmp"
        let descriptor = open(temporary, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard descriptor >= 0 else { throw StateError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let complete = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let wrote = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if wrote < 0 { if errno == EINTR { continue }; return false }
                offset += wrote
            }
            return true
        }
        fchmod(descriptor, mode_t(mode))
        close(descriptor)
        guard complete, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StateError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
