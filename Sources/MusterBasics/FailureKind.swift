/// What went wrong, as the command line reports it: the kind, not the error's type, picks the
/// exit code, and `--output json` prints it as `error.kind`.
public enum FailureKind: String, Sendable, Codable {
    /// The inventory or another input file is wrong (exit 2, before any host is contacted).
    case input
    /// The command line is wrong: an unknown flag, command or `--cluster` (exit 2).
    case usage
    /// A step failed on a host, or a host could not be reached (exit 1).
    case host
    /// Verification found the cluster not as planned (exit 1).
    case check
    /// A safety rule said no: quorum, data, a lock another run holds (exit 1).
    case refused
    /// SIGINT (exit 130) or SIGTERM (exit 143).
    case interrupted

    public var exitCode: Int32 {
        switch self {
        case .input, .usage: return 2
        case .host, .check, .refused: return 1
        case .interrupted: return 130
        }
    }
}

/// An error that knows its kind and where it happened; errors that are not one count as `host`.
public protocol ClassifiedError: Error, CustomStringConvertible {
    var kind: FailureKind { get }
    var cluster: String? { get }
    var host: String? { get }
    var step: String? { get }
    /// The text without the `host: step:` prefix `description` adds.
    var message: String { get }
}

extension ClassifiedError {
    public var cluster: String? { nil }
    public var host: String? { nil }
    public var step: String? { nil }
}

/// A plain classified error for the places that have nothing richer to say.
public struct MusterError: ClassifiedError, Sendable {
    public var kind: FailureKind
    public var cluster: String?
    public var host: String?
    public var step: String?
    public var message: String

    public init(_ kind: FailureKind, cluster: String? = nil, host: String? = nil, step: String? = nil, _ message: String) {
        self.kind = kind
        self.cluster = cluster
        self.host = host
        self.step = step
        self.message = message
    }

    public var description: String {
        (host.map { "\($0): " } ?? "") + (step.map { "\($0): " } ?? "") + message
    }
}
