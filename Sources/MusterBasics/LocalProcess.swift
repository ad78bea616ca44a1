import Foundation

/// The outcome of a program run on the controller.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var succeeded: Bool { status == 0 }
}

public struct LocalProcessError: Error, CustomStringConvertible, Sendable {
    public var command: [String]
    public var result: ProcessResult?
    public var reason: String
    public var description: String {
        var text = "\(Shell.join(command)): \(reason)"
        if let result, !result.stderrText.isEmpty {
            text += ": " + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return text
    }
}

/// Runs programs on the controller (never on a managed host: that is MusterSSH's job).
public enum LocalProcess {
    /// Runs `arguments[0]` (looked up in PATH when not absolute), waits at most `timeout` seconds,
    /// and returns its output. Does not throw on a non-zero exit; see `check`.
    public static func run(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        timeout: TimeInterval = 60
    ) throws -> ProcessResult {
        precondition(!arguments.isEmpty)
        let process = Process()
        if arguments[0].hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
        }
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let outPipe = Pipe(), errPipe = Pipe(), inPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do { try process.run() } catch {
            throw LocalProcessError(command: arguments, result: nil, reason: "cannot start: \(error)")
        }
        // Drain both pipes concurrently: a full stderr pipe would stall the child.
        let collected = OutputCollector()
        let group = DispatchGroup()
        for (pipe, isStdout) in [(outPipe, true), (errPipe, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.store(data, stdout: isStdout)
                group.leave()
            }
        }
        if let input {
            DispatchQueue.global().async {
                try? inPipe.fileHandleForWriting.write(contentsOf: input)
                try? inPipe.fileHandleForWriting.close()
            }
        }
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            _ = finished.wait(timeout: .now() + 5)
            _ = group.wait(timeout: .now() + 5)
            throw LocalProcessError(command: arguments, result: nil,
                                    reason: "timed out after \(Int(timeout)) s")
        }
        _ = group.wait(timeout: .now() + 10)
        return ProcessResult(status: process.terminationStatus,
                             stdout: collected.stdout, stderr: collected.stderr)
    }

    /// Like `run`, but throws when the program exits non-zero.
    @discardableResult
    public static func check(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        timeout: TimeInterval = 60
    ) throws -> ProcessResult {
        let result = try run(arguments, input: input, environment: environment, timeout: timeout)
        guard result.succeeded else {
            throw LocalProcessError(command: arguments, result: result,
                                    reason: "exited with status \(result.status)")
        }
        return result
    }
}

private final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func store(_ data: Data, stdout: Bool) {
        lock.lock(); defer { lock.unlock() }
        if stdout { out = data } else { err = data }
    }
    var stdout: Data { lock.lock(); defer { lock.unlock() }; return out }
    var stderr: Data { lock.lock(); defer { lock.unlock() }; return err }
}
