import Foundation
import MusterBasics

/// The state dir as one tar archive, for `muster state export` and `import`: the CA keys, the
/// cluster records, discovery tokens and the state's identity; not snapshots (they have their own
/// backups, and would make every export as large as the keyspace) and not the lock.
public enum StateArchive {
    /// At most this much state: far above any state dir (a few KiB a cluster), far below memory.
    public static let limit = 256 << 20

    public static func archive(stateDirectory: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: stateDirectory + "/identity") || FileManager.default.fileExists(atPath: stateDirectory + "/pki") else {
            throw MusterError(.usage, "\(stateDirectory) holds no muster state (no identity, no pki/): --state names the state dir to export")
        }
        let result = try LocalProcess.run(["/bin/tar", "--format=posix", "-C", stateDirectory, "--exclude=./snapshots",
                                           "--exclude=./lock", "-cf", "-", "."], timeout: 120)
        guard result.status == 0 else { throw MusterError(.host, "tar of \(stateDirectory) failed: \(result.stderrText)") }
        guard result.stdout.count <= limit else { throw MusterError(.host, "\(stateDirectory) is over \(limit >> 20) MiB without its snapshots") }
        return result.stdout
    }

    /// Refuses an archive holding anything but directories and regular files, or a name that
    /// leaves the directory, before a byte of it is extracted.
    static func checkMembers(_ archive: Data) throws {
        let listing = try LocalProcess.run(["/bin/tar", "-tvf", "-"], input: archive, timeout: 120)
        guard listing.status == 0 else { throw MusterError(.input, "not a tar archive of a state dir: \(listing.stderrText)") }
        let names = try LocalProcess.run(["/bin/tar", "-tf", "-"], input: archive, timeout: 120).stdoutText
            .split(separator: "\n").map(String.init)
        for line in listing.stdoutText.split(separator: "\n") where !line.hasPrefix("d") && !line.hasPrefix("-") {
            throw MusterError(.input, "the archive holds something other than files and directories: \(line)")
        }
        for name in names where name.hasPrefix("/") || name.split(separator: "/").contains("..") {
            throw MusterError(.input, "the archive names a path outside the state dir: \(name)")
        }
    }

    /// Extracts into a fresh directory beside `stateDirectory`, then puts it in its place. A state
    /// dir that holds anything is refused unless `replacing`; then it is moved aside (never
    /// deleted) to `stateDirectory + asideSuffix` and that name returned.
    public static func restore(_ archive: Data, into stateDirectory: String, replacing: Bool, asideSuffix: String) throws -> String? {
        let manager = FileManager.default
        let existing = (try? manager.contentsOfDirectory(atPath: stateDirectory)) ?? []
        if !existing.filter({ $0 != "lock" }).isEmpty && !replacing {
            throw MusterError(.refused, "\(stateDirectory) already holds muster state (\(existing.sorted().prefix(4).joined(separator: ", "))): --force moves it aside to import over it")
        }
        try checkMembers(archive)
        let parent = (stateDirectory as NSString).deletingLastPathComponent
        try manager.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let staging = parent + "/." + (stateDirectory as NSString).lastPathComponent + ".import-\(getpid())"
        try? manager.removeItem(atPath: staging)
        try manager.createDirectory(atPath: staging, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        do {
            let extracted = try LocalProcess.run(["/bin/tar", "-C", staging, "--no-same-owner", "-xf", "-"], input: archive, timeout: 120)
            guard extracted.status == 0 else { throw MusterError(.input, "cannot extract the archive: \(extracted.stderrText)") }
            chmod(staging, 0o700)
            var movedAside: String?
            if manager.fileExists(atPath: stateDirectory) {
                if existing.filter({ $0 != "lock" }).isEmpty {
                    try manager.removeItem(atPath: stateDirectory)
                } else {
                    let aside = stateDirectory + asideSuffix
                    try manager.moveItem(atPath: stateDirectory, toPath: aside)
                    movedAside = aside
                }
            }
            try manager.moveItem(atPath: staging, toPath: stateDirectory)
            return movedAside
        } catch {
            try? manager.removeItem(atPath: staging)
            throw error
        }
    }
}
