import Foundation
import MusterBasics

/// What a name, address or path may look like. Every value here ends up in a remote shell
/// command, a file path or an etcd flag, so the rules are strict rather than clever.
enum Names {
    static func matches(_ value: String, _ pattern: String) -> Bool {
        value.range(of: pattern, options: .regularExpression) != nil
    }

    static func isValidHostName(_ name: String) -> Bool {
        matches(name, #"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"#)
    }

    /// Cluster names become systemd unit names, directory names and dnsmasq file names.
    static func isValidClusterName(_ name: String) -> Bool {
        matches(name, #"^[a-z0-9][a-z0-9-]{0,39}$"#)
    }

    static func isValidUser(_ name: String) -> Bool {
        matches(name, #"^[a-z_][a-z0-9_-]{0,31}$"#)
    }

    static func isToken(_ value: String) -> Bool {
        matches(value, #"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"#)
    }

    static func isVersion(_ value: String) -> Bool {
        matches(value, #"^[0-9]+\.[0-9]+\.[0-9]+$"#)
    }

    static func isDomainName(_ value: String) -> Bool {
        guard value.count <= 253 else { return false }
        return matches(value, #"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"#)
    }

    static func isSafeAbsolutePath(_ value: String) -> Bool {
        matches(value, #"^(/[A-Za-z0-9._-]+)+$"#) && !value.split(separator: "/").contains("..")
    }

    static func isHTTPURL(_ value: String) -> Bool {
        matches(value, #"^https?://[A-Za-z0-9.\[\]:_-]+(/[A-Za-z0-9._~/%-]*)?$"#)
    }

    static func isIPAddress(_ value: String) -> Bool { IPAddress.isLiteral(value) }
}
