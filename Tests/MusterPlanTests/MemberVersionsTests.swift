import Testing
import MusterInventory
@testable import MusterWorkspace

/// Each distinct member binary is asked its version once, however many clusters run it; a
/// cluster that pins `member.version` asks none.
@Suite struct MemberVersionsTests {
    @Test func eachBinaryIsAskedOnce() throws {
        let text = """
        hosts:
          a: { address: 10.0.0.1 }
        member: { binary: /x/etcd-a }
        clusters:
          one: { members: [a] }
          two: { members: [a], client_port: 3379, peer_port: 3380 }
          three: { members: [a], client_port: 4379, peer_port: 4380, member: { binary: /x/etcd-b } }
          four: { members: [a], client_port: 5379, peer_port: 5380, member: { binary: /x/etcd-c, version: 3.7.1 } }

        """
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        var asked: [String] = []
        let versions = try MemberVersions.ask(inventory, inventoryPath: "inv.yml") { (binary: String) throws -> String in
            asked.append(binary)
            return binary.hasSuffix("-a") ? "3.5.16" : "3.5.30"
        }
        #expect(asked == ["/x/etcd-a", "/x/etcd-b"])
        #expect(versions == ["one": "3.5.16", "two": "3.5.16", "three": "3.5.30", "four": "3.7.1"])
    }
}
