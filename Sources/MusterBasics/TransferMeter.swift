import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Bytes, rate and time left of one long transfer (a snapshot streamed, a snapshot or binary
/// shipped to hosts), redrawn in place on the terminal's last line. Drawn only where somebody
/// watches: standard output and standard error both terminals, and no `--output json`; anywhere
/// else it draws nothing, so logs and machine-read output stay line by line.
public final class TransferMeter: Sendable {
    /// Where frames go: standard error, or a test's collector.
    public typealias Sink = @Sendable (String) -> Void

    private struct State {
        var done: Int64 = 0
        var lastDrawn: ContinuousClock.Instant?
        var finished = false
    }

    private let label: String
    private let total: Int64?
    private let sink: Sink?
    private let started = ContinuousClock.now
    private let state = Mutex(State())
    /// At most ten frames a second: a terminal redrawn per 64 KiB chunk would cost more than the
    /// transfer.
    static let interval = Duration.milliseconds(100)

    /// `total` nil: a stream of unknown length (bytes and rate, no time left).
    public init(label: String, total: Int64?, sink: Sink?) {
        self.label = label
        self.total = total
        self.sink = sink
        draw(force: true)
    }

    /// Whether `forTerminal` draws: standard output and standard error both terminals.
    public static var forTerminalDraws: Bool { isatty(STDOUT_FILENO) == 1 && isatty(STDERR_FILENO) == 1 }

    /// A meter on standard error when a person watches, else one that draws nothing.
    public static func forTerminal(label: String, total: Int64?, machineOutput: Bool) -> TransferMeter {
        let watched = !machineOutput && forTerminalDraws
        let toStandardError: Sink = { frame in FileHandle.standardError.write(Data(frame.utf8)) }
        return TransferMeter(label: label, total: total, sink: watched ? toStandardError : nil)
    }

    /// Whether frames go anywhere: a caller that must work to learn the bytes done (a file's
    /// size) need not when nobody watches.
    public var isDrawing: Bool { sink != nil }

    /// The bytes done so far, as a whole (a file that grows as a stream is written to it).
    public func update(done bytes: Int64) {
        state.withLock { $0.done = max($0.done, bytes) }
        draw(force: false)
    }

    public func advance(by bytes: Int) {
        let done = state.withLock { state -> Int64 in
            state.done += Int64(bytes)
            return state.done
        }
        if let total, done >= total { finish() } else { draw(force: false) }
    }

    /// The last frame, kept on the screen as the transfer's summary.
    public func finish() {
        let first = state.withLock { state -> Bool in
            defer { state.finished = true }
            return !state.finished
        }
        guard first, let sink else { return }
        sink("\r\u{1B}[K" + Self.frame(label: label, done: state.withLock { $0.done }, total: total,
                                        elapsed: ContinuousClock.now - started, finished: true) + "\n")
    }

    private func draw(force: Bool) {
        guard let sink else { return }
        let now = ContinuousClock.now
        let done: Int64? = state.withLock { state in
            guard !state.finished else { return nil }
            if !force, let last = state.lastDrawn, now - last < Self.interval { return nil }
            state.lastDrawn = now
            return state.done
        }
        guard let done else { return }
        sink("\r\u{1B}[K" + Self.frame(label: label, done: done, total: total, elapsed: now - started, finished: false))
    }

    /// `snapshot main   48.0 MiB / 200.0 MiB  24.0 MiB/s  0:06 left`; finished: `in 8.3 s`.
    public static func frame(label: String, done: Int64, total: Int64?, elapsed: Duration, finished: Bool) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0.05 ? Double(done) / seconds : nil
        // Bytes beside the payload (keys riding the same stdin) never show as more than all.
        let done = total.map { min(done, $0) } ?? done
        var text = label + "  " + mebibytes(done)
        if let total { text += " / " + mebibytes(total) }
        if let rate { text += String(format: "  %.1f MiB/s", rate / 1_048_576) }
        if finished {
            text += String(format: "  in %.1f s", seconds)
        } else if let total, let rate, rate > 0, total > done {
            let left = Int((Double(total - done) / rate).rounded(.up))
            text += String(format: "  %d:%02d left", left / 60, left % 60)
        }
        return text
    }

    /// Where a frame may stand half-drawn, a line printed meanwhile starts by clearing it.
    public static let clearLine = isatty(STDERR_FILENO) == 1 ? "\r\u{1B}[K" : ""

    static func mebibytes(_ bytes: Int64) -> String {
        String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
