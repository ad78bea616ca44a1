/// An etcd release as `etcd --version` prints it (`3.5.16`, `3.6.0-rc.1`): compared by its
/// numbers, the suffix ignored (a release candidate counts as its release).
public struct EtcdVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// `MAJOR.MINOR.PATCH[-suffix]`; nil for anything else.
    public init?(_ text: String) {
        let numbers = text.split(separator: "-", maxSplits: 1).first.map(String.init) ?? text
        let parts = numbers.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let major = parts[0], let minor = parts[1], let patch = parts[2] else { return nil }
        self.init(major, minor, patch)
    }

    /// The line it belongs to: `3.5` for 3.5.16.
    public var line: String { "\(major).\(minor)" }
    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (a: Self, b: Self) -> Bool { (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }

    /// Whether both belong to one minor line.
    public func sameLine(as other: Self) -> Bool { major == other.major && minor == other.minor }
}
