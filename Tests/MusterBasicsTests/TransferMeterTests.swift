import Foundation
import Synchronization
import Testing
@testable import MusterBasics

@Suite struct TransferMeterTests {
    @Test func aFrameSaysBytesRateAndTimeLeft() {
        let frame = TransferMeter.frame(label: "snapshot main", done: 48 << 20, total: 200 << 20, elapsed: .seconds(2), finished: false)
        #expect(frame == "snapshot main  48.0 MiB / 200.0 MiB  24.0 MiB/s  0:07 left")
        let done = TransferMeter.frame(label: "snapshot main", done: 200 << 20, total: nil, elapsed: .milliseconds(8300), finished: true)
        #expect(done == "snapshot main  200.0 MiB  24.1 MiB/s  in 8.3 s")
        // No rate before there is time to measure one, and no time left without it.
        #expect(TransferMeter.frame(label: "x", done: 0, total: 10, elapsed: .zero, finished: false) == "x  0.0 MiB / 0.0 MiB")
    }

    @Test func framesAreRedrawnInPlaceAtMostTenTimesASecondAndTheLastStays() {
        let frames = Mutex<[String]>([])
        let meter = TransferMeter(label: "ship", total: 1000, sink: { frame in frames.withLock { $0.append(frame) } })
        for _ in 0..<1000 { meter.advance(by: 1) }   // far faster than 100 ms
        meter.finish()
        meter.finish()
        let drawn = frames.withLock { $0 }
        #expect(drawn.count == 2, "the first frame and the last: \(drawn)")
        #expect(drawn.allSatisfy { $0.hasPrefix("\r\u{1B}[K") })
        #expect(drawn.last?.hasSuffix("\n") == true && drawn.last?.contains("0.0 MiB / 0.0 MiB") == true)
        #expect(drawn.first?.hasSuffix("\n") == false)
    }

    @Test func nobodyWatchingMeansNothingDrawn() {
        // The test runner's output is a pipe, never a terminal.
        let meter = TransferMeter.forTerminal(label: "ship", total: 10, machineOutput: false)
        meter.advance(by: 10)
        meter.finish()
        let silent = TransferMeter(label: "ship", total: 10, sink: nil)
        silent.advance(by: 10)
        silent.finish()
    }
}
