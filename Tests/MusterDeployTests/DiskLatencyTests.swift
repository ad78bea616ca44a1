import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterTestSupport

/// The preflight's disk probe, read and judged; and run for real on this machine by `/bin/sh`,
/// as a host runs it.
@Suite struct DiskLatencyTests {
    @Test func readsEachDataDirAndTakesOffTheStartOfDd() {
        var reader = DiskLatency.Reader()
        let output = """
            diskfor /var/lib/etcd/main
            diskon /var/lib/etcd
            diskbase 900 1000 1100
            disklat 1500 2000 1000 201000
            diskfor /data/other
            diskerr cannot create a file in /data
            """
        for line in output.split(separator: "\n") {
            let read = reader.read(line)
            #expect(read, "\(line)")
        }
        let other = reader.read("main data yes")
        #expect(!other)
        let main = reader.measurements["/var/lib/etcd/main"]
        #expect(main?.directory == "/var/lib/etcd")
        // Less the median start (1 ms), never under zero.
        #expect(main?.samples == [0.0005, 0.001, 0, 0.2])
        #expect(main?.p50 == 0.0005 && main?.p99 == 0.2)
        #expect(reader.measurements["/data/other"]?.error == "cannot create a file in /data")
    }

    @Test func nearestRankQuantiles() {
        let samples = (1...200).map { Double($0) / 1000 }
        #expect(DiskLatency.Measurement.quantile(0.5, of: samples) == 0.1)
        #expect(DiskLatency.Measurement.quantile(0.99, of: samples) == 0.198)
        #expect(DiskLatency.Measurement.quantile(0.99, of: [0.3]) == 0.3)
        #expect(DiskLatency.Measurement.quantile(0.99, of: []) == nil)
    }

    @Test func judgesAtTheTablesLines() {
        func judged(p99: Double) -> (lines: [String], problems: [String]) {
            DiskLatency.judge(host: "host1", ["/var/lib/etcd/main": .init(directory: "/var/lib/etcd", samples: [0.001, p99])])
        }
        #expect(judged(p99: 0.010).problems.isEmpty && !judged(p99: 0.010).lines[0].hasPrefix("WARN"))
        #expect(judged(p99: 0.011).problems.isEmpty && judged(p99: 0.011).lines[0].hasPrefix("WARN: fdatasync p50 1.00 ms, p99 11 ms"))
        #expect(judged(p99: 0.100).problems.isEmpty)
        let refused = judged(p99: 0.101)
        #expect(refused.problems.count == 1 && refused.lines[0].hasPrefix("FAILED"))
        #expect(refused.problems[0].hasPrefix("host1: the disk of /var/lib/etcd/main is too slow for etcd: fdatasync p99 101 ms"))
        #expect(refused.problems[0].contains("--skip-disk-check"))
        // Not measured: a warning, never a refusal.
        let unmeasured = DiskLatency.judge(host: "host1", ["/d": .init(error: "no bash on the host")])
        #expect(unmeasured.problems.isEmpty && unmeasured.lines == ["WARN: fdatasync not measured for /d: no bash on the host"])
    }

    /// The probe as preflight sends it, run here: one filesystem measured once for two data dirs
    /// (a path with a quote and a space among them), one with data skipped, nothing left behind.
    @Test func theProbeRunsUnderShAndLeavesNothing() throws {
        let root = try TemporaryDirectory.create(prefix: "muster-disk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/had/member", withIntermediateDirectories: true)
        let fresh = root + "/it's new/main", second = root + "/it's new/other", had = root + "/had"
        let script = DiskLatency.script(dataDirectories: [fresh, second, had])
        let result = try LocalProcess.run(["/bin/sh", "-c", script], timeout: 60)
        #expect(result.status == 0, "\(result.stderrText)")
        var reader = DiskLatency.Reader()
        for line in result.stdoutText.split(separator: "\n") {
            let read = reader.read(line)
            #expect(read, "\(line)")
        }
        #expect(reader.measurements.keys.sorted() == [fresh, second])
        let measured = try #require(reader.measurements[fresh])
        #expect(measured.directory == root && measured.error == nil)
        #expect(!measured.samples.isEmpty && measured.samples.count <= DiskLatency.writes)
        #expect(reader.measurements[second] == measured)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["had"])
    }
}
