import Foundation
import MusterTestSupport
import Testing

/// `muster render` on inventories built to hurt it: each is refused with exit 2 and a
/// `FILE:LINE:COLUMN: error:` line, within 64 MiB of memory. Only behaviour is asserted, never
/// time (the hang guard turns a hang into a failure).
@Suite struct HostileInputTests {
    static let memoryCeiling = 64 << 20

    /// One hostile inventory and where its refusal must point.
    struct Hostile: CustomTestStringConvertible, Sendable {
        var name: String
        var bytes: @Sendable () -> Data
        var line: Int
        var column: Int
        var fragment: String
        var testDescription: String { name }
    }

    private static let hostA = "member: { version: 3.4.23 }\nhosts:\n  a: { address: 10.0.0.1 }\n"
    private static let clusterMain = "clusters:\n  main: { members: [a], tls: false }\n"

    private static func text(_ text: @escaping @Sendable () -> String) -> @Sendable () -> Data {
        { Data(text().utf8) }
    }

    private static func list(_ item: String, _ count: Int, separator: String = ", ") -> String {
        Array(repeating: item, count: count).joined(separator: separator)
    }

    static let inventories: [Hostile] = [
        Hostile(name: "billion laughs", bytes: text {
            // 345 bytes in the issue; nine levels of ten aliases each. l4 holds 111,111 nodes
            // and 123,473 come before l5, whose first alias crosses 200,000.
            var text = hostA + "l0: &l0 [" + list("lol", 10) + "]\n"
            for level in 1...9 { text += "l\(level): &l\(level) [" + list("*l\(level - 1)", 10) + "]\n" }
            return text + clusterMain
        }, line: 9, column: 10, fragment: "grows past 200000 nodes here"),
        Hostile(name: "a wide list repeated by aliases", bytes: text {
            // 10,001 nodes a time: the 19th alias crosses 200,000.
            hostA + "big: &big [" + list("x", 10_000, separator: ",") + "]\nuse: [" + list("*big", 100) + "]\n" + clusterMain
        }, line: 5, column: 115, fragment: "grows past 200000 nodes here"),
        Hostile(name: "aliases as mapping keys", bytes: text {
            hostA + "k: &k [" + list("x", 10_000, separator: ",") + "]\nkeys:\n" + (0..<40).map { "  ? *k\n  : \($0)\n" }.joined() + clusterMain
        }, line: 42, column: 5, fragment: "grows past 200000 nodes here"),
        Hostile(name: "merge keys", bytes: text {
            hostA + "base: &base {" + (0..<5_000).map { "k\($0): v" }.joined(separator: ", ") + "}\n"
                + (0..<40).map { "m\($0): { <<: *base }\n" }.joined() + clusterMain
        }, line: 23, column: 12, fragment: "grows past 200000 nodes here"),
        Hostile(name: "a chain of aliases", bytes: text {
            var text = hostA + "a0: &a0 x\n"
            for level in 1...12 { text += "a\(level): &a\(level) [*a\(level - 1)]\n" }
            return text + clusterMain
        }, line: 13, column: 10, fragment: "repeats aliases more than 8 deep"),
        Hostile(name: "a megabyte of [", bytes: text { hostA + "x: " + String(repeating: "[", count: 1 << 20) + "\n" },
                line: 4, column: 67, fragment: "nesting deeper than 64 levels"),
        Hostile(name: "Latin-1 text", bytes: {
            var data = Data((hostA + "x: caf").utf8)
            data.append(0xE9)
            return data + Data(("\n" + clusterMain).utf8)
        }, line: 4, column: 7, fragment: "invalid trailing UTF-8 octet after 0xE9"),
        Hostile(name: "a NUL byte", bytes: {
            var data = Data((hostA + "x: a").utf8)
            data.append(0)
            return data + Data(("\n" + clusterMain).utf8)
        }, line: 4, column: 5, fragment: "control characters are not allowed (0x00)"),
        Hostile(name: "three mebibytes", bytes: {
            let line = Data((String(repeating: "#", count: 1023) + "\n").utf8)
            var data = Data(capacity: 3 << 20)
            for _ in 0..<(3 << 10) { data.append(line) }
            return data
        }, line: 2049, column: 1, fragment: "larger than 2097152 bytes"),
        Hostile(name: "a million empty lines", bytes: text { String(repeating: "\n", count: 1_000_000) + "a: [\n" },
                line: 1_000_002, column: 1, fragment: "did not find expected node content"),
        Hostile(name: "a megabyte scalar", bytes: text { hostA + "x: " + String(repeating: "y", count: 1 << 20) + "\n" + clusterMain },
                line: 4, column: 4, fragment: "a scalar of 1048576 bytes"),
        Hostile(name: "a 300,000-item list", bytes: text { hostA + "x: [" + list("1", 300_000, separator: ",") + "]\n" + clusterMain },
                line: 4, column: 399_979, fragment: "grows past 200000 nodes here"),
        Hostile(name: "a cluster name with a final newline", bytes: text { hostA + "clusters:\n  \"main\\n\": { members: [a], tls: false }\n" },
                line: 5, column: 3, fragment: "cluster name 'main\u{240A}' must be"),
        Hostile(name: "a path with a final newline", bytes: text { hostA + clusterMain + "paths: { install: \"/opt/x\\n\" }\n" },
                line: 6, column: 19, fragment: "'install' in paths holds the control character U+000A"),
    ]

    @Test(arguments: inventories)
    func renderRefusesIt(_ hostile: Hostile) throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-hostile")
        let inventory = directory.path + "/inventory.yml"
        try hostile.bytes().write(to: URL(fileURLWithPath: inventory))
        let run = try binary.run(["render", inventory, "--out", directory.path + "/out", "--state", directory.path + "/state"],
                                 measuringPeakRSS: true)
        #expect(run.status == 2, "\(run)")
        #expect(!run.timedOut)
        #expect(run.stderrText.hasPrefix("\(inventory):\(hostile.line):\(hostile.column): error: "), "\(run)")
        #expect(run.stderrText.contains(hostile.fragment), "\(run)")
        let peak = try #require(run.peakRSSBytes)
        #expect(peak < Self.memoryCeiling, "\(run)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/out"))
    }
}
