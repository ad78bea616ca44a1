import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Named points of a run where a test can cut it: `MUSTER_FAILPOINT=PHASE` kills muster with
/// SIGKILL when it reaches PHASE, as a power cut or `kill -9` would. Honoured only together with
/// `MUSTER_SANDBOX_ONLY=1`, so that no production run can be cut by a stray variable.
///
/// The phase names are the step names progress lines print (`up.after-preflight`, ...); a comma
/// separated list cuts at the first one reached. `PHASE@N` cuts at the Nth time PHASE is reached.
/// `PHASE:int` and `PHASE:term` send SIGINT or SIGTERM instead, as an operator's Ctrl-C or a
/// service manager would. `PHASE:stop` stops muster (SIGSTOP) there until it gets SIGCONT: a test
/// then does its fault (a host switched off) at that exact point, without guessing a delay.
public enum Failpoint {
    public static func reach(_ phase: String) {
        let environment = ProcessInfo.processInfo.environment
        guard environment["MUSTER_SANDBOX_ONLY"] == "1", let wanted = environment["MUSTER_FAILPOINT"] else { return }
        for entry in wanted.split(separator: ",") {
            let action = entry.split(separator: ":", maxSplits: 1)
            let parts = action[0].split(separator: "@", maxSplits: 1)
            guard parts.first.map(String.init) == phase else { continue }
            let count = Counter.shared.increment(phase)
            if parts.count == 2, Int(parts[1]) != count { continue }
            let (signalNumber, name) = signal(named: action.count == 2 ? String(action[1]) : nil)
            FileHandle.standardError.write(Data("failpoint \(phase): \(name) (MUSTER_FAILPOINT)\n".utf8))
            kill(getpid(), signalNumber)
            // Let the handler see it before the run goes on, as a real signal would arrive.
            if signalNumber == SIGINT || signalNumber == SIGTERM { usleep(100_000) }
        }
    }

    private static func signal(named action: String?) -> (Int32, String) {
        switch action {
        case "int": (SIGINT, "sending SIGINT")
        case "term": (SIGTERM, "sending SIGTERM")
        case "stop": (SIGSTOP, "stopping muster until SIGCONT")
        default: (SIGKILL, "killing muster")
        }
    }

    private final class Counter: @unchecked Sendable {
        static let shared = Counter()
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func increment(_ phase: String) -> Int {
            lock.lock(); defer { lock.unlock() }
            counts[phase, default: 0] += 1
            return counts[phase]!
        }
    }
}
