import Foundation
import MusterBasics

/// The etcd binary on the controller that muster ships to hosts.
public enum MemberBinary {
    public struct VersionError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Asks `etcd --version` once; `member.version` in the inventory skips this.
    public static func version(of path: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw VersionError(description: "member binary \(path) is missing or not executable (install etcd-server, set member.binary, or set member.version to render without it)")
        }
        let result = try LocalProcess.run([path, "--version"], timeout: 20)
        guard let version = parseVersion(result.stdoutText) else {
            throw VersionError(description: "cannot read the version from '\(path) --version': \(result.stdoutText.prefix(200))")
        }
        return version
    }

    /// Reads `etcd Version: 3.4.23` from etcd's version banner.
    public static func parseVersion(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("etcd Version:") {
            return line.dropFirst("etcd Version:".count).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
