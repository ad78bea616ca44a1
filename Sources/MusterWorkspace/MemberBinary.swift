import Foundation
import MusterBasics

/// The etcd binary on the controller that muster ships to hosts.
public enum MemberBinary {
    public struct VersionError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The version read from the binary's bytes (`EtcdBinaryVersion`), never by running it;
    /// `mayRun` (`up`, which ships and runs the binary anyway): a binary whose bytes do not say
    /// is asked `--version`, with nothing of muster's environment but a fixed `PATH`. The read and
    /// the wait happen on a dispatch thread, never on one of the cooperative pool's.
    public static func version(of path: String, mayRun: Bool = false) async throws -> String {
        try checkExecutable(path)
        if let version = try await offPool({ EtcdBinaryVersion.read(path) }) { return version }
        guard mayRun else { throw unreadable(path) }
        let result = try await LocalProcess.runOffPool([path, "--version"], environment: scrubbedEnvironment,
                                                       inheritingEnvironment: false, timeout: 20)
        return try parse(result.stdoutText, path: path)
    }

    /// The same for synchronous callers (tests), which have no pool to protect.
    public static func versionBlocking(of path: String, mayRun: Bool = false) throws -> String {
        try checkExecutable(path)
        if let version = EtcdBinaryVersion.read(path) { return version }
        guard mayRun else { throw unreadable(path) }
        let result = try LocalProcess.run([path, "--version"], environment: scrubbedEnvironment, inheritingEnvironment: false, timeout: 20)
        return try parse(result.stdoutText, path: path)
    }

    /// All a member binary asked `--version` sees of the environment.
    static let scrubbedEnvironment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"]

    private static func unreadable(_ path: String) -> VersionError {
        VersionError(description: "cannot read etcd's version from the bytes of \(path) (it is not an etcd binary muster can read, and muster runs nothing an inventory names to find out); set member.version")
    }

    private static func checkExecutable(_ path: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw VersionError(description: "member binary \(path) is missing or not executable (install etcd-server, set member.binary, or set member.version to render without it)")
        }
    }

    private static func parse(_ text: String, path: String) throws -> String {
        guard let version = parseVersion(text) else {
            throw VersionError(description: "cannot read a version from '\(path) --version': \(text.prefix(200))")
        }
        return version
    }

    /// Reads `etcd Version: 3.4.23` from etcd's version banner. The version names install paths
    /// and goes into the unit, so anything but `MAJOR.MINOR.PATCH[-suffix]` is refused.
    public static func parseVersion(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("etcd Version:") {
            let version = line.dropFirst("etcd Version:".count).trimmingCharacters(in: .whitespaces)
            return isValid(version) ? version : nil
        }
        return nil
    }

    /// `[0-9]{1,4}.[0-9]{1,4}.[0-9]{1,4}(-[A-Za-z0-9.]{1,32})?`, checked by bytes: a Regex here
    /// paged in Swift's regex engine (1.7 MB resident) for every render.
    public static func isValid(_ version: String) -> Bool {
        let bytes = Array(version.utf8)
        var index = 0
        func digits() -> Bool {
            let start = index
            while index < bytes.count, index - start < 5, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return (1...4).contains(index - start)
        }
        for part in 0..<3 {
            guard digits() else { return false }
            if part < 2 {
                guard index < bytes.count, bytes[index] == UInt8(ascii: ".") else { return false }
                index += 1
            }
        }
        if index == bytes.count { return true }
        guard bytes[index] == UInt8(ascii: "-") else { return false }
        let suffix = bytes[(index + 1)...]
        return (1...32).contains(suffix.count) && suffix.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
        }
    }
}
