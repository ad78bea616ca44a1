import Foundation
import MusterBasics

/// The etcd binary on the controller that muster ships to hosts.
public enum MemberBinary {
    public struct VersionError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Asks `etcd --version` once (`member.version` in the inventory skips this), on a dispatch
    /// thread: the wait must not hold one of the cooperative pool's threads.
    public static func version(of path: String) async throws -> String {
        try checkExecutable(path)
        let result = try await LocalProcess.runOffPool([path, "--version"], timeout: 20)
        return try parse(result.stdoutText, path: path)
    }

    /// The same for synchronous callers (tests), which have no pool to protect.
    public static func versionBlocking(of path: String) throws -> String {
        try checkExecutable(path)
        return try parse(try LocalProcess.run([path, "--version"], timeout: 20).stdoutText, path: path)
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
