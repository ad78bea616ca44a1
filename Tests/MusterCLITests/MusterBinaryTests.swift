import Foundation
import Testing

/// The harness itself: what it returns, and that a hang becomes a failure instead of a stuck run.
@Suite struct MusterBinaryTests {
    @Test func helpExitsZeroOnStandardOutput() throws {
        let run = try MusterBinary().run(["--help"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdoutText.contains("render"), "\(run)")
        #expect(run.peakRSSBytes == nil)
    }

    @Test func aMissingInventoryIsBadInput() throws {
        let run = try MusterBinary().run(["render", "/nonexistent/inventory.yml"], measuringPeakRSS: true)
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText == "/nonexistent/inventory.yml:1:1: error: cannot read the inventory file\n")
        #expect((run.peakRSSBytes ?? 0) > 0)
    }

    /// `discovery serve` stays in the foreground until stopped: the guard must kill it.
    @Test func theHangGuardKillsARunThatDoesNotEnd() throws {
        let run = try MusterBinary().run(["discovery", "serve", "--listen", "127.0.0.1:0", "--etcd", "http://127.0.0.1:9"],
                                         hangLimit: 2)
        #expect(run.timedOut)
        #expect(run.status == 128 + SIGKILL, "\(run)")
    }
}
