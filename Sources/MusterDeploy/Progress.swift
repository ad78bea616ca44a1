import Foundation
import MusterBasics
import Synchronization

/// Per-host progress lines while long steps run. Plain lines, one per event, so the output reads
/// the same on a terminal, in a log file and in CI.
public final class Progress: Sendable {
    /// One line at a time on stderr: lines of parallel steps never interleave.
    private let output = Mutex(())
    /// Lines say the time since the run began, on the monotonic clock.
    private let started = ContinuousClock.now
    private let quiet: Bool
    private let observer: (@Sendable (Event) -> Void)?

    /// One line as an observer sees it: tests line muster's events up with what a client saw,
    /// or read what an operator would. Notes have no host or step.
    public struct Event: Sendable {
        public var at: Date
        public var host: String
        public var step: String
        public var message: String
        /// The line as printed.
        public var line: String
    }

    public init(quiet: Bool = false, observer: (@Sendable (Event) -> Void)? = nil) {
        self.quiet = quiet
        self.observer = observer
    }

    public func host(_ host: String, _ step: String, _ message: String) {
        let now = Date()
        line(String(format: "%6.2fs  %-10@ %-9@ %@", elapsed, host as NSString,
                    step as NSString, message as NSString), Event(at: now, host: host, step: step, message: message, line: ""))
    }

    /// Quiet runs (`--output json`) draw no transfer meter either.
    public var isQuiet: Bool { quiet }

    public func note(_ message: String) {
        let now = Date()
        line(String(format: "%6.2fs  %@", elapsed, message as NSString),
             Event(at: now, host: "", step: "", message: message, line: ""))
    }

    private var elapsed: Double {
        let duration = ContinuousClock.now - started
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func line(_ text: String, _ event: Event) {
        var event = event
        event.line = text
        observer?(event)
        guard !quiet else { return }
        output.withLock { _ in FileHandle.standardError.write(Data((TransferMeter.clearLine + TerminalText.escaped(text) + "\n").utf8)) }
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
