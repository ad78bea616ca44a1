import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C and SIGTERM during a run: the first one lets the current step finish and stops the
/// run at the next step boundary (exit 130, or 143 for SIGTERM); a second one aborts at once.
/// Steps are the same named phases failpoints cut at.
public enum Interruption {
    private static let state = State()
    private static let sources = Sources()

    /// Installs the handlers; the CLI calls it once at start.
    public static func install() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                if state.request(signalNumber) {
                    FileHandle.standardError.write(Data("\n\(name(signalNumber)): finishing the current step, then stopping (again to abort at once)\n".utf8))
                } else {
                    FileHandle.standardError.write(Data("\n\(name(signalNumber)) again: aborting now; run the same command again to finish\n".utf8))
                    exit(signalNumber == SIGTERM ? 143 : 130)
                }
            }
            source.resume()
            sources.keep(source)
        }
    }

    /// Throws at a step boundary once an interruption was asked for.
    public static func check(_ phase: String) throws {
        guard let signalNumber = state.requested else { return }
        throw MusterError(.interrupted, step: phase,
                          "\(name(signalNumber)): stopped before \(phase); what is done stays done (members already started keep running), and running the same command again finishes the job")
    }

    /// 130 for SIGINT, 143 for SIGTERM.
    public static var exitCode: Int32 { state.requested == SIGTERM ? 143 : 130 }

    private static func name(_ signalNumber: Int32) -> String { signalNumber == SIGTERM ? "SIGTERM" : "interrupted (SIGINT)" }

    private final class State: @unchecked Sendable {
        private let lock = NSLock()
        private var signalNumber: Int32?
        /// True for the first request.
        func request(_ number: Int32) -> Bool {
            lock.lock(); defer { lock.unlock() }
            guard signalNumber == nil else { return false }
            signalNumber = number
            return true
        }
        var requested: Int32? { lock.lock(); defer { lock.unlock() }; return signalNumber }
    }

    private final class Sources: @unchecked Sendable {
        private let lock = NSLock()
        private var kept: [DispatchSourceSignal] = []
        func keep(_ source: DispatchSourceSignal) { lock.lock(); kept.append(source); lock.unlock() }
    }
}

/// A named step boundary of a run: where a test's failpoint cuts and where an interruption stops.
public func checkpoint(_ phase: String) throws {
    Failpoint.reach(phase)
    try Interruption.check(phase)
}
