import Foundation

/// Reads every process's /proc/PID/cmdline in the given pid namespaces (the sandbox hosts') over
/// and over on a thread of its own, as any local user of a host could, until stopped or bounded
/// out (rounds and seconds): what a run puts in an argv is readable while it runs.
final class CommandLineWatch: @unchecked Sendable {
    private let namespaces: Set<String>
    private let lock = NSLock()
    private var stopped = false
    private var done = false
    private var commandLines: Set<String> = []
    private(set) var rounds = 0

    /// `pids`: one process in each namespace to watch (a host's sshd).
    init(namespacesOf pids: [Int32]) {
        namespaces = Set(pids.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/ns/pid") })
    }

    var namespaceCount: Int { namespaces.count }

    func start(maxRounds: Int = 200_000, maxSeconds: Double = 300) {
        let thread = Thread { [self] in
            let deadline = Date().addingTimeInterval(maxSeconds)
            var round = 0
            while round < maxRounds, Date() < deadline, !isStopped {
                round += 1
                let seen = Self.scan(namespaces)
                lock.lock(); commandLines.formUnion(seen); rounds = round; lock.unlock()
            }
            lock.lock(); done = true; lock.unlock()
        }
        thread.start()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Stops the thread (waiting for it, bounded) and returns every distinct command line seen.
    func stop() -> Set<String> {
        lock.lock(); stopped = true; lock.unlock()
        for _ in 0..<500 {
            lock.lock(); let finished = done; lock.unlock()
            if finished { break }
            usleep(10_000)
        }
        lock.lock(); defer { lock.unlock() }
        return commandLines
    }

    private static func scan(_ namespaces: Set<String>) -> Set<String> {
        var seen: Set<String> = []
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries where entry.first?.isNumber == true {
            guard let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/ns/pid"),
                  namespaces.contains(namespace),
                  let handle = FileHandle(forReadingAtPath: "/proc/\(entry)/cmdline") else { continue }
            // /proc files report no size: read to the end. A process that exits meanwhile fails
            // the read (ESRCH), which readDataToEndOfFile would turn into a crash.
            let bytes = (try? handle.readToEnd()) ?? Data()
            try? handle.close()
            guard !bytes.isEmpty else { continue }
            seen.insert(String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self))
        }
        return seen
    }
}
