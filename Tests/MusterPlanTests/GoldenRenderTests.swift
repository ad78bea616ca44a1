import Foundation
import Testing
import MusterBasics
import MusterInventory
@testable import MusterPlan
import MusterWorkspace

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
let goldenRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

/// The walkthrough's own tokens, so rendered IDs can be compared with the IDs its etcd logged.
let walkthroughTokens: [String: [String: DiscoveryToken]] = [
    "seed-discovery": ["main": DiscoveryToken(token: "0d8c6714-b4b1-4cc1-8ff4-d276f96d247f")],
    "seed-public-discovery": ["main": DiscoveryToken(
        token: "982846b900d7c377a7716564aae3d19e",
        serviceURL: "https://discovery.etcd.io/982846b900d7c377a7716564aae3d19e")],
]

func renderSeed(_ name: String, tokens: [String: DiscoveryToken]? = nil) throws -> (Inventory, [ClusterPlan], [RenderedFile]) {
    let inventory = try InventoryLoader.load(path: repositoryRoot.appendingPathComponent("inventories/\(name).yml").path)
    let facts = PlanFacts(memberVersion: "3.4.23", discoveryTokens: tokens ?? walkthroughTokens[name] ?? [:])
    let clusters = try Planner(inventory: inventory, facts: facts).plan()
    let templates = try TemplateLoader.load(directory: repositoryRoot.appendingPathComponent("templates").path)
    return (inventory, clusters, try Renderer(templates: templates, inventory: inventory).files(for: clusters))
}

@Suite struct GoldenRenderTests {
    /// Set MUSTER_UPDATE_GOLDEN=1 to rewrite the golden trees after a deliberate template change.
    @Test(arguments: ["seed-static", "seed-discovery", "seed-public-discovery", "seed-dns"])
    func seedRendersLikeGolden(_ seed: String) throws {
        let (_, _, files) = try renderSeed(seed)
        let directory = goldenRoot.appendingPathComponent(seed)
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" {
            try? FileManager.default.removeItem(at: directory)
            for file in files {
                let url = directory.appendingPathComponent(file.host + file.path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(file.contents.utf8).write(to: url)
            }
        }
        let expectedPaths = try goldenFiles(under: directory)
        #expect(Set(files.map { $0.host + $0.path }) == Set(expectedPaths), "the rendered tree has other files than \(directory.path)")
        for file in files {
            let golden = try String(contentsOf: directory.appendingPathComponent(file.host + file.path), encoding: .utf8)
            #expect(file.contents == golden, "\(file.host)\(file.path) differs from golden")
        }
    }

    private func goldenFiles(under directory: URL) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory)
            return !isDirectory.boolValue
        }
    }
}

/// Member IDs that a real etcd reported, as recorded in ../shared/reference's walkthrough
/// (etcd 3.3.13; the ID derivation is unchanged in 3.4 and 3.5): `etcdctl member list` output
/// and the `discovery: found self/peer` log lines.
@Suite struct MemberIDTests {
    func ids(_ seed: String, cluster: String = "main") throws -> [String: String] {
        let (_, clusters, _) = try renderSeed(seed)
        let plan = try #require(clusters.first { $0.name == cluster })
        return Dictionary(uniqueKeysWithValues: plan.members.map { ($0.name, $0.memberID.map(EtcdIDs.hex) ?? "none") })
    }

    @Test func dnsMembersMatchTheWalkthroughsMemberList() throws {
        // The walkthrough ran plain http on etcd 3.3; the seed uses https (etcd 3.4 needs it),
        // so check the derivation on the walkthrough's own http URLs.
        let token = "etcd-cluster-1"
        #expect(EtcdIDs.hex(EtcdIDs.memberID(peerURLs: ["http://etcd1.hi-etcd.com:2380"], token: token)) == "efb48b68f151a3b7")
        #expect(EtcdIDs.hex(EtcdIDs.memberID(peerURLs: ["http://etcd2.hi-etcd.com:2380"], token: token)) == "9a99a7e8e3abdf6a")
        #expect(EtcdIDs.hex(EtcdIDs.memberID(peerURLs: ["http://etcd3.hi-etcd.com:2380"], token: token)) == "5ee0e04e205fa694")
    }

    @Test func discoveryMembersMatchTheWalkthroughsMemberList() throws {
        let found = try ids("seed-discovery")
        #expect(found["etcd2"] == "7421510307215dd2")
        #expect(found["etcd3"] == "68d21150076963a0")
    }

    @Test func publicDiscoveryMembersMatchTheWalkthroughsLogLines() throws {
        let found = try ids("seed-public-discovery")
        #expect(found["etcd1"] == "72c1c6de2cd8a18d")
        #expect(found["etcd2"] == "335a21e8bbfde639")
        #expect(found["etcd3"] == "c5cd5d147247c226")
    }

    @Test func serviceURLUnknownMeansNoPredictedIDs() throws {
        let (_, clusters, files) = try renderSeed("seed-public-discovery", tokens: [:])
        #expect(clusters[0].members.allSatisfy { $0.memberID == nil })
        #expect(clusters[0].discovery?.isPlaceholder == true)
        #expect(files.first { $0.path.hasSuffix("conf.yml") }?.contents.contains(Planner.placeholderMarker) == true)
    }

    @Test func discoveryBackendComesFirstWithV2() throws {
        let (_, clusters, files) = try renderSeed("seed-discovery")
        #expect(clusters.map(\.name) == ["disco", "main"])
        #expect(clusters[0].enableV2)
        #expect(clusters[1].discovery?.url == "http://172.19.19.122:2379/v2/keys/discovery/0d8c6714-b4b1-4cc1-8ff4-d276f96d247f")
        #expect(clusters[1].discovery?.sizeKeyURL?.hasSuffix("/_config/size") == true)
        let backendConf = try #require(files.first { $0.host == "etcd1" && $0.path.hasSuffix("disco/conf.yml") })
        #expect(backendConf.contents.contains("enable-v2: true"))
    }

    @Test func clusterIDFollowsMemberIDs() throws {
        let (_, clusters, _) = try renderSeed("seed-static")
        let ids = clusters[0].members.compactMap(\.memberID)
        #expect(clusters[0].clusterID == EtcdIDs.clusterID(memberIDs: ids))
        #expect(clusters[0].clusterID != EtcdIDs.clusterID(memberIDs: Array(ids.dropLast())))
    }
}

/// Render goldens for members of lines CI has no binary of (etcd 3.6 and 3.7): each inventory
/// under Golden/inventories pins `member.version` (per cluster where they differ), is checked
/// against its lines' key tables as `render` checks it, and renders like Golden/NAME.
@Suite struct VersionGoldenRenderTests {
    static let fixedTokens: [String: [String: DiscoveryToken]] = [
        "v36-discovery": ["main": DiscoveryToken(token: "5f1c0a52-3d0e-4c1b-9a59-36a0c6d1e7b2")],
    ]

    func render(_ name: String) throws -> [RenderedFile] {
        let inventory = try InventoryLoader.load(path: goldenRoot.appendingPathComponent("inventories/\(name).yml").path)
        let versions = Dictionary(uniqueKeysWithValues: inventory.clusters.map { ($0.name, inventory.memberSettings(of: $0.name).version ?? "") })
        try inventory.check(memberVersions: versions)
        let facts = PlanFacts(memberVersions: versions, discoveryTokens: Self.fixedTokens[name] ?? [:])
        let clusters = try Planner(inventory: inventory, facts: facts).plan()
        let templates = try TemplateLoader.load(directory: repositoryRoot.appendingPathComponent("templates").path)
        return try Renderer(templates: templates, inventory: inventory).files(for: clusters)
    }

    /// Set MUSTER_UPDATE_GOLDEN=1 to rewrite the golden trees after a deliberate change.
    @Test(arguments: ["v36-static", "v36-dns", "v36-discovery", "v37-static", "v37-dns"])
    func rendersLikeGolden(_ name: String) throws {
        let files = try render(name)
        let directory = goldenRoot.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["MUSTER_UPDATE_GOLDEN"] == "1" {
            try? FileManager.default.removeItem(at: directory)
            for file in files {
                let url = directory.appendingPathComponent(file.host + file.path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(file.contents.utf8).write(to: url)
            }
        }
        let expected = FileManager.default.enumerator(atPath: directory.path)?.compactMap { $0 as? String }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory) && !isDirectory.boolValue
        } ?? []
        #expect(Set(files.map { $0.host + $0.path }) == Set(expected), "the rendered tree has other files than \(directory.path)")
        for file in files {
            let golden = try String(contentsOf: directory.appendingPathComponent(file.host + file.path), encoding: .utf8)
            #expect(file.contents == golden, "\(file.host)\(file.path) differs from golden")
        }
    }

    @Test func membersRunTheirClustersVersion() throws {
        let files = try render("v36-discovery")
        let units = files.filter { $0.path.hasSuffix(".service") || $0.path.hasSuffix("start-member.sh") }
        #expect(units.contains { $0.path.contains("/disco") && $0.contents.contains("etcd-3.5.16") })
        #expect(units.contains { $0.path.contains("/main") && $0.contents.contains("etcd-3.6.14") })
        #expect(!units.contains { $0.path.contains("/main") && $0.contents.contains("etcd-3.5.16") })
    }

    @Test func renamedKeysAndFeatureGatesOn36() throws {
        let conf = try #require(try render("v36-static").first { $0.host == "etcd1" && $0.path.hasSuffix("main/conf.yml") })
        #expect(conf.contents.contains("feature-gates: InitialCorruptCheck=true"))
        #expect(conf.contents.contains("compaction-batch-limit: 500"))
        #expect(conf.contents.contains("max-learners: 2"))
        #expect(!conf.contents.contains("experimental-"), "\(conf.contents)")
    }
}

/// The learner limit a membership change is held to comes from the members' line.
@Suite struct LearnerLimitPlanTests {
    func limit(version: String, etcd: String) throws -> Int {
        let text = "hosts:\n  a: { address: 10.0.0.1 }\nclusters:\n  main: { members: [a]\(etcd.isEmpty ? "" : ", etcd: { \(etcd) }") }\n"
        let inventory = try InventoryLoader.parse(text, file: "inv.yml")
        try inventory.check(memberVersion: version)
        return try Planner(inventory: inventory, facts: PlanFacts(memberVersion: version)).plan()[0].learnerLimit
    }

    @Test func maxLearnersCountsFrom36() throws {
        #expect(try limit(version: "3.6.14", etcd: "max-learners: 3") == 3)
        #expect(try limit(version: "3.6.14", etcd: "") == 1)
        #expect(try limit(version: "3.7.1", etcd: "max-learners: 2") == 2)
        #expect(try limit(version: "3.5.30", etcd: "") == 1)
    }
}
