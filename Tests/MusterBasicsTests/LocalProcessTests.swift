import Foundation
import Testing
@testable import MusterBasics

@Suite struct LocalProcessTests {
    @Test func separatesStreamsAndReportsStatus() throws {
        let result = try LocalProcess.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(result.stdoutText == "out\n")
        #expect(result.stderrText == "err\n")
        #expect(result.status == 3)
    }

    @Test func feedsInputAndReadsMegabytes() throws {
        let input = Data(repeating: 0x61, count: 3 << 20)
        let result = try LocalProcess.check(["/bin/sh", "-c", "cat; head -c 2000000 /dev/zero >&2"], input: input)
        #expect(result.stdout == input)
        #expect(result.stderr.count == 2_000_000)
    }

    @Test func aDetachedGrandchildDoesNotHangTheCaller() throws {
        let start = Date()
        let result = try LocalProcess.run(["/bin/sh", "-c", "sleep 30 & echo started"])
        #expect(result.stdoutText == "started\n")
        #expect(Date().timeIntervalSince(start) < 15, "returned only after the grandchild")
        _ = try LocalProcess.run(["/usr/bin/pkill", "-f", "^sleep 30$"])
    }

    @Test func concurrentRunsAllComplete() async throws {
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<12 {
                group.addTask {
                    try LocalProcess.check(["/bin/sh", "-c", "sleep 0.2; echo \(index)"], timeout: 20).stdoutText
                }
            }
            var all: [String] = []
            for try await output in group { all.append(output) }
            return all
        }
        #expect(Set(outputs) == Set((0..<12).map { "\($0)\n" }))
    }

    @Test func childrenGetDefaultSignalHandling() throws {
        // A test runner blocks SIGTERM; a child that inherited that would survive its own kill.
        let result = try LocalProcess.run(["/bin/sh", "-c", "kill -TERM $$; sleep 5; echo survived"], timeout: 10)
        #expect(result.status == 128 + SIGTERM)
        #expect(result.stdoutText.isEmpty)
    }

    @Test func timeoutKillsAndSaysSo() {
        do {
            _ = try LocalProcess.run(["/bin/sleep", "20"], timeout: 0.5)
            Issue.record("expected a timeout")
        } catch let error as LocalProcessError {
            #expect(error.reason.contains("timed out"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func missingProgramIsAClearError() {
        #expect(throws: LocalProcessError.self) { try LocalProcess.run(["/nonexistent/program"]) }
    }
}

@Suite struct ShellQuoteTests {
    @Test(arguments: ["plain", "with space", "it's", "$(rm -rf /)", "a\"b", "", "-n", "back\\slash", "new\nline"])
    func quotedValuesReadBackByteForByte(_ value: String) throws {
        let result = try LocalProcess.check(["/bin/sh", "-c", "printf %s \(Shell.quote(value))"])
        #expect(result.stdoutText == value)
    }
}
