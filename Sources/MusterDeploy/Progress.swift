import Foundation
import MusterBasics

/// Per-host progress lines while long steps run. Plain lines, one per event, so the output reads
/// the same on a terminal, in a log file and in CI.
public final class Progress: @unchecked Sendable {
    private let lock = NSLock()
    private let start = Date()
    private let quiet: Bool
    private let sink: (@Sendable (String) -> Void)?
    /// `sink` takes each line as well (a test reads what an operator would see).
    public init(quiet: Bool = false, sink: (@Sendable (String) -> Void)? = nil) {
        self.quiet = quiet
        self.sink = sink
    }

    public func host(_ host: String, _ step: String, _ message: String) {
        line(String(format: "%6.2fs  %-10@ %-9@ %@", Date().timeIntervalSince(start), host as NSString,
                    step as NSString, message as NSString))
    }

    public func note(_ message: String) {
        line(String(format: "%6.2fs  %@", Date().timeIntervalSince(start), message as NSString))
    }

    private func line(_ text: String) {
        sink?(text)
        guard !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// A step that failed on a host (or a refusal of one), named so the user knows where to look:
/// muster's one classified error, built the way the deploy steps name things.
public typealias DeployError = MusterError

extension MusterError {
    public init(host: String?, cluster: String? = nil, step: String, kind: FailureKind = .host, _ message: String) {
        self.init(kind, cluster: cluster, host: host, step: step, message)
    }
}
