import Foundation
import MusterBasics

/// The readable account of a plan: what runs where, with which URLs, IDs and tokens.
public enum PlanSummary {
    public static func text(_ plan: Plan) -> String {
        var lines: [String] = []
        for cluster in plan.clusters {
            var header = "cluster \(cluster.name): \(cluster.members.count) members, bootstrap \(cluster.mode), "
            header += cluster.tls ? "TLS" : "plain http"
            header += ", etcd \(cluster.memberVersion)"
            lines.append(header)
            for note in notes(cluster) { lines.append("  note         \(note)") }
            if let id = cluster.clusterID { lines.append("  cluster ID   \(EtcdIDs.hex(id))") }
            if let token = cluster.initialClusterToken { lines.append("  token        \(token)") }
            if cluster.enableV2 { lines.append("  v2 API       enabled (discovery backend of another cluster)") }
            if let discovery = cluster.discovery {
                lines.append("  discovery    \(discovery.url)")
                if discovery.isPlaceholder {
                    lines.append("               placeholder: `up` asks \(discovery.serviceURL ?? "")/new?size=\(discovery.size) for the real URL")
                }
                if let key = discovery.sizeKeyURL { lines.append("  size key     PUT \(key) value=\(discovery.size)") }
                if let proxy = discovery.proxy { lines.append("  proxy        \(proxy)") }
            }
            if let discovery = cluster.discoveryV3 {
                lines.append("  discovery    v3, token \(discovery.token), through \(discovery.backendCluster.map { "cluster \($0): " } ?? "")\(discovery.endpoints.joined(separator: ","))")
                lines.append("  size key     \(discovery.sizeKey) = \(discovery.size) (written at `up`; the token's keys are deleted once the cluster formed)")
            }
            if let dns = cluster.dns {
                lines.append("  dnsmasq      on \(dns.serverHost) (\(dns.serverAddress)), \(dns.configPath)")
                for record in dns.serverRecords + dns.clientRecords {
                    lines.append("  SRV          \(record.service).\(record.domain) -> \(record.target):\(record.port)")
                }
            }
            for member in cluster.members {
                let id = member.memberID.map(EtcdIDs.hex) ?? "(known once the discovery URL is)"
                lines.append("  member \(member.name) on \(member.host) (\(member.address)) id \(id)")
                lines.append("    peer     \(member.peerURL)")
                lines.append("    clients  \(member.clientURLs.joined(separator: ","))")
                lines.append("    data     \(member.paths.data)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What the operator should know of a cluster as planned, which is no reason to refuse it.
    public static func notes(_ cluster: ClusterPlan) -> [String] {
        [evenCountNote(cluster), openDiscoveryBackendNote(cluster)].compactMap { $0 }
    }

    /// etcd's v2 discovery client dials its backend with no certificate and no credentials, and
    /// trusts only the system's roots: the backend's client port cannot ask for either.
    static func openDiscoveryBackendNote(_ cluster: ClusterPlan) -> String? {
        guard cluster.servesV2Discovery else { return nil }
        return "serves etcd's v2 discovery, whose client has no certificate and no credentials: its client port runs without TLS, and whoever reaches it reads and writes every key, v3 API included; keep it on a network only the members it serves reach, or bootstrap by v3 discovery (members on etcd 3.6+), `muster discovery serve`, static or DNS SRV"
    }

    /// An even member count buys nothing: N members tolerate as many failures as N - 1, and
    /// need one more member up for quorum.
    static func evenCountNote(_ cluster: ClusterPlan) -> String? {
        let count = cluster.members.count
        guard count > 0, count % 2 == 0 else { return nil }
        let quorum = count / 2 + 1
        return "\(count) members need \(quorum) for quorum and tolerate \(count - quorum) failure(s), as \(count - 1) would; an odd count is the usual choice"
    }

    /// A stable JSON document for tools: IDs as etcdctl's hex, files without their contents.
    public static func json(_ plan: Plan) -> Data {
        json(plan, files: plan.files.map(\.entry))
    }

    /// The same document with the file list given apart (a render that wrote each file as it
    /// was rendered keeps only their entries). Written directly, byte for byte what
    /// `JSONEncoder.sortedPretty` made of the same values (keys sorted by their bytes, two-space
    /// indents, `"key" : value`, no escaped slashes), without its 6 MiB and tenth of a large
    /// render's time.
    public static func json(_ plan: Plan, files: [FileEntry]) -> Data {
        var data = Data()
        json(plan, files: files) { chunk in
            if let base = chunk.baseAddress { data.append(base.assumingMemoryBound(to: UInt8.self), count: chunk.count) }
        }
        return data
    }

    /// The same bytes handed to `output` in pieces of about 64 KiB as they are made, so that
    /// `render` streams its 2 MB `plan.json` of 500 clusters to the file instead of holding it.
    public static func json(_ plan: Plan, files: [FileEntry], chunks output: (UnsafeRawBufferPointer) -> Void) {
        withoutActuallyEscaping(output) { output in write(plan, files: files, into: PrettyJSON(output: output)) }
    }

    private static func write(_ plan: Plan, files: [FileEntry], into json: PrettyJSON) {
        var out = json
        out.object { out in
            out.field("clusters") { out in
                out.array(plan.clusters) { out, cluster in cluster.writeJSON(into: &out) }
            }
            out.field("files") { out in
                out.array(files) { out, file in
                    out.object { out in
                        out.field("host", file.host)
                        out.field("mode", String(file.mode, radix: 8))
                        out.field("path", file.path)
                    }
                }
            }
            out.field("inventory", plan.inventory)
        }
        out.flush()
    }
}

// Each object's keys in the order of their bytes, as `.sortedKeys` puts them; an optional that
// is nil is left out, as synthesized `Encodable` does.
extension ClusterPlan {
    func writeJSON(into out: inout PrettyJSON) {
        out.object { out in
            if let id = clusterID { out.field("cluster_id", EtcdIDs.hex(id)) }
            out.field("depends_on") { out in out.array(dependsOn) { out, name in out.string(name) } }
            if let discovery { out.field("discovery") { out in discovery.writeJSON(into: &out) } }
            if let discoveryV3 { out.field("discovery_v3") { out in discoveryV3.writeJSON(into: &out) } }
            if let dns { out.field("dns") { out in dns.writeJSON(into: &out) } }
            out.field("enable_v2", enableV2)
            out.field("member_version", memberVersion)
            out.field("members") { out in
                out.array(members) { out, member in member.writeJSON(into: &out) }
            }
            out.field("mode", mode)
            out.field("name", name)
            out.field("tls", tls)
            if let token = initialClusterToken { out.field("token", token) }
        }
    }
}

extension MemberPlan {
    func writeJSON(into out: inout PrettyJSON) {
        out.object { out in
            out.field("address", address)
            out.field("client_urls") { out in out.array(clientURLs) { out, url in out.string(url) } }
            out.field("endpoint", endpoint)
            out.field("host", host)
            if let id = memberID { out.field("id", EtcdIDs.hex(id)) }
            out.field("name", name)
            out.field("paths") { out in
                out.object { out in
                    out.field("binary", paths.binary)
                    out.field("config", paths.config)
                    out.field("configDir", paths.configDir)
                    out.field("data", paths.data)
                    out.field("etcdctl", paths.etcdctl)
                    out.field("log", paths.log)
                    out.field("logDir", paths.logDir)
                    out.field("pidfile", paths.pidfile)
                    out.field("pkiDir", paths.pkiDir)
                    out.field("runDir", paths.runDir)
                    out.field("startScript", paths.startScript)
                    out.field("unit", paths.unit)
                }
            }
            out.field("peer_url", peerURL)
        }
    }
}

extension DiscoveryPlan {
    func writeJSON(into out: inout PrettyJSON) {
        out.object { out in
            out.field("backend", backend.rawValue)
            if let backendCluster { out.field("backendCluster", backendCluster) }
            out.field("isPlaceholder", isPlaceholder)
            if let proxy { out.field("proxy", proxy) }
            if let serviceURL { out.field("serviceURL", serviceURL) }
            out.field("size", size)
            if let sizeKeyURL { out.field("sizeKeyURL", sizeKeyURL) }
            out.field("token", token)
            out.field("url", url)
        }
    }
}

extension DiscoveryV3Plan {
    func writeJSON(into out: inout PrettyJSON) {
        out.object { out in
            if let backendCluster { out.field("backend_cluster", backendCluster) }
            out.field("client_certificate", clientCertificate)
            out.field("endpoints") { out in out.array(endpoints) { out, url in out.string(url) } }
            out.field("size", size)
            out.field("size_key", sizeKey)
            out.field("tls", tls)
            out.field("token", token)
        }
    }
}

extension DNSPlan {
    func writeJSON(into out: inout PrettyJSON) {
        func records(_ records: [SRVRecord], into out: inout PrettyJSON) {
            out.array(records) { out, record in
                out.object { out in
                    out.field("domain", record.domain)
                    out.field("port", record.port)
                    out.field("service", record.service)
                    out.field("target", record.target)
                }
            }
        }
        out.object { out in
            out.field("clientRecords") { out in records(clientRecords, into: &out) }
            out.field("configPath", configPath)
            out.field("domain", domain)
            out.field("hostRecords") { out in
                out.array(hostRecords) { out, record in
                    out.object { out in
                        out.field("address", record.address)
                        out.field("fqdn", record.fqdn)
                    }
                }
            }
            out.field("serverAddress", serverAddress)
            out.field("serverHost", serverHost)
            out.field("serverRecords") { out in records(serverRecords, into: &out) }
            out.field("serviceName", serviceName)
        }
    }
}

/// JSON text laid out as Foundation's `JSONEncoder` does with `.prettyPrinted`: a container's
/// items one per line, two spaces deeper; an empty one as an open line (`[\n\n  ]`).
struct PrettyJSON {
    private var bytes: [UInt8] = []
    private let output: (UnsafeRawBufferPointer) -> Void
    private static let chunk = 1 << 16
    /// Per open container: whether nothing is in it yet.
    private var empty: [Bool] = []

    init(output: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.output = output
        bytes.reserveCapacity(Self.chunk + 4096)
    }

    /// Hands over what is made so far.
    mutating func flush() {
        bytes.withUnsafeBytes(output)
        bytes.removeAll(keepingCapacity: true)
    }

    mutating func object(_ body: (inout PrettyJSON) -> Void) {
        open(UInt8(ascii: "{"))
        body(&self)
        close(UInt8(ascii: "}"))
    }

    mutating func array<Items: Sequence>(_ items: Items, _ element: (inout PrettyJSON, Items.Element) -> Void) {
        open(UInt8(ascii: "["))
        for item in items {
            nextItem()
            element(&self, item)
        }
        close(UInt8(ascii: "]"))
    }

    mutating func field(_ key: String, _ value: (inout PrettyJSON) -> Void) {
        nextItem()
        string(key)
        bytes.append(contentsOf: " : ".utf8)
        value(&self)
    }

    mutating func field(_ key: String, _ value: String) { field(key) { $0.string(value) } }
    mutating func field(_ key: String, _ value: Int) { field(key) { $0.bytes.append(contentsOf: String(value).utf8) } }
    mutating func field(_ key: String, _ value: Bool) { field(key) { $0.bytes.append(contentsOf: (value ? "true" : "false").utf8) } }

    /// Quoted and escaped: `"` and `\\`, `\b \f \n \r \t` by name, every other control
    /// character as `\u00xx`; `/`, DEL and all non-ASCII text as they are.
    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case 0x08: bytes.append(contentsOf: #"\b"#.utf8)
            case 0x0C: bytes.append(contentsOf: #"\f"#.utf8)
            case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
            case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
            case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func open(_ bracket: UInt8) {
        bytes.append(bracket)
        empty.append(true)
    }

    private mutating func close(_ bracket: UInt8) {
        let wasEmpty = empty.removeLast()
        if wasEmpty { bytes.append(UInt8(ascii: "\n")) }
        newline()
        bytes.append(bracket)
    }

    /// A comma after the previous item, then the item's own line.
    private mutating func nextItem() {
        if bytes.count >= Self.chunk { flush() }
        if !empty[empty.count - 1] { bytes.append(UInt8(ascii: ",")) }
        empty[empty.count - 1] = false
        newline()
    }

    private mutating func newline() {
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * empty.count))
    }
}
