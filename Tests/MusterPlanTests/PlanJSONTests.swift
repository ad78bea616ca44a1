import Foundation
import Testing
import MusterBasics
@testable import MusterPlan
@testable import MusterWorkspace

/// `plan.json` is written directly now; it must stay byte for byte what `JSONEncoder` with
/// sorted keys made of the same document (the encoder it replaced is kept here as the oracle).
@Suite struct PlanJSONTests {
    @Test(arguments: ["seed-static", "seed-discovery", "seed-public-discovery", "seed-dns"])
    func planJSONIsWhatJSONEncoderWrote(_ seed: String) throws {
        let (_, clusters, files) = try renderSeed(seed)
        let plan = Plan(inventory: "inventories/\(seed).yml", clusters: clusters, files: files)
        #expect(String(decoding: PlanSummary.json(plan), as: UTF8.self) == String(decoding: try encoderJSON(plan), as: UTF8.self))
    }

    @Test func everyCharacterIsEscapedAsJSONEncoderDoes() throws {
        var awkward = ""
        for value in 0..<128 { awkward.unicodeScalars.append(Unicode.Scalar(UInt8(value))) }
        awkward += "é\u{2028}\u{2029}😀\u{FEFF}"
        let (_, clusters, files) = try renderSeed("seed-public-discovery", tokens: [:])
        var cluster = clusters[0]
        cluster.name = awkward
        cluster.dependsOn = [awkward, ""]
        cluster.members[0].clientURLs = []
        cluster.members[1].memberID = 0
        cluster.bootstrap = .dns(DNSPlan(serverHost: awkward, serverAddress: "::1", domain: "d", serviceName: "",
                                         configPath: "/c", serverRecords: [], clientRecords: [
                                            SRVRecord(service: "s", domain: "d", target: awkward, port: -1)],
                                         hostRecords: []), token: awkward)
        let plan = Plan(inventory: awkward, clusters: [cluster, clusters[0]],
                        files: files + [RenderedFile(host: awkward, path: "/\\\"", contents: "", mode: 0o4755)])
        #expect(String(decoding: PlanSummary.json(plan), as: UTF8.self) == String(decoding: try encoderJSON(plan), as: UTF8.self))
        let empty = Plan(inventory: "", clusters: [], files: [])
        #expect(PlanSummary.json(empty) == (try encoderJSON(empty)))
    }

    /// The encoder `PlanSummary.json` used before it wrote the document itself.
    private func encoderJSON(_ plan: Plan) throws -> Data {
        struct Document: Encodable {
            var inventory: String
            var clusters: [ClusterDocument]
            var files: [FileDocument]
        }
        struct ClusterDocument: Encodable {
            var name: String, mode: String, tls: Bool, member_version: String
            var cluster_id: String?, token: String?, enable_v2: Bool
            var discovery: DiscoveryPlan?, dns: DNSPlan?, depends_on: [String]
            var members: [MemberDocument]
        }
        struct MemberDocument: Encodable {
            var name: String, host: String, address: String, id: String?
            var peer_url: String, client_urls: [String], endpoint: String, paths: MemberPaths
        }
        struct FileDocument: Encodable { var host: String, path: String, mode: String }
        let document = Document(
            inventory: plan.inventory,
            clusters: plan.clusters.map { cluster in
                ClusterDocument(
                    name: cluster.name, mode: cluster.mode, tls: cluster.tls, member_version: cluster.memberVersion,
                    cluster_id: cluster.clusterID.map(EtcdIDs.hex), token: cluster.initialClusterToken,
                    enable_v2: cluster.enableV2, discovery: cluster.discovery, dns: cluster.dns,
                    depends_on: cluster.dependsOn,
                    members: cluster.members.map { member in
                        MemberDocument(name: member.name, host: member.host, address: member.address,
                                       id: member.memberID.map(EtcdIDs.hex), peer_url: member.peerURL,
                                       client_urls: member.clientURLs, endpoint: member.endpoint, paths: member.paths)
                    })
            },
            files: plan.files.map { FileDocument(host: $0.host, path: $0.path, mode: String($0.mode, radix: 8)) })
        return try JSONEncoder.sortedPretty.encode(document)
    }
}

/// `render` renders and writes cluster by cluster on several lanes: the tree, `plan.json` and
/// the manifest are the same as the serial write of the whole plan, whatever the lanes.
@Suite struct StreamedRenderTests {
    @Test(arguments: ["seed-discovery", "seed-dns"])
    func lanesWriteWhatTheSerialRenderWrites(_ seed: String) throws {
        let (inventory, clusters, files) = try renderSeed(seed)
        let templates = try TemplateLoader.load(directory: repositoryRoot.appendingPathComponent("templates").path)
        let renderer = Renderer(templates: templates, inventory: inventory)
        let plan = Plan(inventory: "inventory.yml", clusters: clusters, files: files)
        let root = FileManager.default.temporaryDirectory.path + "/muster-lanes-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let serial = try RenderedTree.write(plan, to: root + "/serial", summary: "s\n", json: PlanSummary.json(plan))
        let expected = try tree(root + "/serial")
        for lanes in [1, 2, 4] {
            let bare = Plan(inventory: plan.inventory, clusters: clusters, files: [])
            let (written, entries) = try RenderedTree.write(rendering: bare, with: renderer, to: root + "/lanes-\(lanes)",
                                                            summary: "s\n", lanes: lanes)
            #expect(entries == files.map(\.entry))
            #expect(written.map { $0.replacingOccurrences(of: "/lanes-\(lanes)/", with: "/serial/") } == serial)
            #expect(try tree(root + "/lanes-\(lanes)") == expected, "\(lanes) lanes")
        }
    }

    @Test func aFailedRenderListsWhatItWroteForTheNextOne() throws {
        let (inventory, clusters, _) = try renderSeed("seed-discovery")
        var texts = Dictionary(uniqueKeysWithValues: try TemplateSet.names.map { name in
            (name, try String(contentsOfFile: repositoryRoot.appendingPathComponent("templates/\(name).mustache").path, encoding: .utf8))
        })
        // The second cluster's conf.yml does not parse back: its first file is never written.
        texts["conf.yml"] = "{{% CONTENT_TYPE: YAML}}\nname: {{name}}\n{{#enableV2}}\nenable-v2: true\n{{/enableV2}}\n{{^enableV2}}\nbad: [\n{{/enableV2}}\n"
        let renderer = Renderer(templates: try TemplateSet(texts: texts, origin: "t"), inventory: inventory)
        let root = FileManager.default.temporaryDirectory.path + "/muster-failed-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(throws: TemplateError.self) {
            try RenderedTree.write(rendering: Plan(inventory: "i", clusters: clusters, files: []), with: renderer,
                                   to: root, summary: "", lanes: 1)
        }
        let manifest = try String(contentsOfFile: root + "/" + RenderedTree.manifestName, encoding: .utf8)
        #expect(manifest.contains("etcd1/etc/etcd/disco/conf.yml"))
        #expect(!manifest.contains("/main/"))
    }

    /// Every file under `directory` with its bytes and mode.
    private func tree(_ directory: String) throws -> [String: String] {
        var files: [String: String] = [:]
        let enumerator = try #require(FileManager.default.enumerator(atPath: directory))
        for case let relative as String in enumerator {
            let path = directory + "/" + relative
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { continue }
            files[relative] = String(status.st_mode & 0o7777, radix: 8) + " " + (try String(contentsOfFile: path, encoding: .utf8))
        }
        return files
    }
}

/// The member version names install paths: checked by bytes now, as the regex it replaced.
@Suite struct MemberVersionCheckTests {
    @Test func versionsAreMajorMinorPatchWithAnOptionalSuffix() {
        for good in ["3.4.23", "0.0.0", "1234.5.6", "3.5.0-rc.1", "3.5.0-" + String(repeating: "a", count: 32)] {
            #expect(MemberBinary.isValid(good), "\(good)")
        }
        for bad in ["", "3.4", "3.4.23.1", "12345.1.1", "3..4", "v3.4.23", "3.4.23-", "3.4.23-rc_1", "3.4.23 ",
                    "3.5.0-" + String(repeating: "a", count: 33), "٣.4.23", "3.4.23\n"] {
            #expect(!MemberBinary.isValid(bad), "\(bad)")
        }
    }
}
