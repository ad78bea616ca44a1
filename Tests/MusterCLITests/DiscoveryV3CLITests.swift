import Foundation
import Testing

/// v3 discovery on the built binary: what the members cannot speak is bad input (exit 2) at the
/// key's FILE:LINE:COLUMN, before any state dir exists; the manual's inventory renders.
@Suite struct DiscoveryV3CLITests {
    private func inventory(version: String, discovery: String) throws -> (path: String, directory: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-v3cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/inventory.yml"
        try Data("""
            member: { version: \(version) }
            hosts:
              h1: { address: 127.0.0.1 }
              h2: { address: 127.0.0.2 }
            clusters:
              disco: { members: [h1], tls: false }
              main:
                members: [h2]
                bootstrap: { discovery: \(discovery) }

            """.utf8).write(to: URL(fileURLWithPath: path))
        return (path, directory)
    }

    @Test(arguments: [
        ("3.7.1", "{ cluster: disco, size: 1, protocol: v2 }", "9:66: error: cluster 'main' cannot use v2 discovery: etcd 3.7.1 has no v2 discovery"),
        ("3.5.16", "{ cluster: disco, size: 1, protocol: v3 }", "9:66: error: cluster 'main' cannot use v3 discovery: etcd 3.5.16 has no v3 discovery"),
        ("3.6.14", "{ cluster: disco, size: 1, protocol: v2 }", "9:66: error: cluster 'main' uses v2 discovery through cluster 'disco', but 'disco' runs etcd 3.6.14, which serves no v2 keys API"),
    ])
    func aProtocolTheMembersCannotSpeakExits2AtTheKey(_ version: String, _ discovery: String, _ expected: String) throws {
        let (path, directory) = try inventory(version: version, discovery: discovery)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try MusterBinary().run(["render", path, "--state", directory + "/state"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderrText.contains("\(path):\(expected)"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/state"), "a refused inventory left a state dir")
    }

    @Test func theManualsInventoryRenders() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("muster-v3cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try MusterBinary().run(["render", "inventories/seed-discovery-v3.yml", "--out", out + "/tree", "--state", out + "/state",
                                          "--templates", "templates"], in: MusterBinary.packageRoot.path)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdoutText.contains("cluster main: 3 members, bootstrap discovery-v3, TLS, etcd 3.6.14"), "\(run)")
        let conf = try String(contentsOfFile: out + "/tree/etcd2/etc/etcd/main/conf.yml", encoding: .utf8)
        #expect(conf.contains("discovery-config:\n  token: "))
    }
}
