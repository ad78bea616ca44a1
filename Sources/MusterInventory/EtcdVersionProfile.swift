/// What one etcd minor line (3.4, 3.5, 3.6, 3.7) accepts and offers, in one place: rendering,
/// preflight, planning and every operation ask the profile and never compare version strings.
/// Sources are etcd's own (CHANGELOG-3.6/3.7, the upgrade guides, the tags' source), as
/// ../shared/reference/etcd-facts.md quotes them; docs/etcd-versions.md has the table.
///
/// A line muster does not know (3.3 and older, 3.8 and newer) is refused, never treated as the
/// nearest known one: a new line removes keys and protocols (3.7 dropped every `experimental-*`
/// key and v2 discovery, and ignores removed keys in a config file without a word), so a guess
/// would render files that etcd misreads.
public struct EtcdVersionProfile: Sendable, Equatable {
    /// etcd's two discovery protocols (`DiscoveryProtocol.swift`); which this line speaks is
    /// `discoveryProtocols`.
    public typealias DiscoveryProtocol = MusterInventory.DiscoveryProtocol

    public enum Tool: String, Sendable {
        case etcdctl, etcdutl
    }

    /// The lines muster knows, oldest first.
    public static let knownLines = ["3.4", "3.5", "3.6", "3.7"]

    public let version: EtcdVersion

    public struct UnknownLine: Error, CustomStringConvertible {
        public var version: String
        public var description: String {
            "etcd \(version) is not a line muster knows (\(EtcdVersionProfile.knownLines.joined(separator: ", "))): its config keys, discovery and upgrade rules are unknown to muster, so it renders nothing for it; use a binary of a known line (member.binary, or member.version to render)"
        }
    }

    /// The profile of `version`'s line; throws for a line muster does not know.
    public init(_ version: EtcdVersion) throws(UnknownLine) {
        guard Self.knownLines.contains(version.line) else { throw UnknownLine(version: version.description) }
        self.version = version
    }

    /// The same from `etcd --version`'s text; throws for what is not MAJOR.MINOR.PATCH too.
    public init(_ text: String) throws(UnknownLine) {
        guard let version = EtcdVersion(text) else { throw UnknownLine(version: text) }
        try self.init(version)
    }

    public var line: String { version.line }
    private var minor: Int { version.major == 3 ? version.minor : 0 }

    // MARK: APIs and discovery

    /// Serves the v2 keys API when `enable-v2` is set (3.6 removed `--enable-v2`).
    public var servesV2API: Bool { minor <= 5 }

    /// The discovery protocols a member of this line bootstraps with, preferred first: v2 only
    /// before 3.6, v3 and the deprecated v2 on 3.6, v3 only on 3.7 (`--discovery` removed).
    public var discoveryProtocols: [DiscoveryProtocol] {
        switch minor {
        case ...5: return [.v2]
        case 6: return [.v3, .v2]
        default: return [.v3]
        }
    }

    public var preferredDiscoveryProtocol: DiscoveryProtocol { discoveryProtocols[0] }

    public func speaks(_ discovery: DiscoveryProtocol) -> Bool { discoveryProtocols.contains(discovery) }

    /// 3.6 still bootstraps by v2 discovery but logs "V2 discovery is deprecated!".
    public var v2DiscoveryDeprecated: Bool { minor == 6 }

    /// 3.4.x ignores plain `_etcd-server._tcp` records (etcd issue 11321, fixed in 3.5): DNS SRV
    /// bootstrap works only with `_etcd-server-ssl._tcp`, that is with TLS.
    public var dnsSRVNeedsTLS: Bool { minor <= 4 }

    // MARK: TLS

    /// etcd's JSON gateway dials the member's own client port with TLS. From 3.5 it presents the
    /// certificate of `client-transport-security`'s `client-cert-file` (read in 3.5.0's
    /// `server/embed/config.go` and `client/pkg/transport/listener.go`), so muster gives it a
    /// certificate of its own and the server certificate carries no clientAuth. etcd 3.4 has no
    /// such key: its gateway presents the server certificate (etcd issue 9785), which must stay
    /// a client certificate too.
    public var gatewayTakesItsOwnClientCertificate: Bool { minor >= 5 }

    // MARK: tools and data

    /// `snapshot restore` (and `snapshot status`): etcdctl on 3.4; etcdutl from 3.5 (3.5's
    /// etcdctl restores with a deprecation notice, 3.6 removed it from etcdctl).
    public var restoreTool: Tool { minor <= 4 ? .etcdctl : .etcdutl }

    /// Whether a member of this line runs a data dir (or a snapshot restored from one) that a
    /// cluster at `clusterVersion` wrote: etcd never runs a data dir of a newer minor.
    public func runsDataWritten(by clusterVersion: EtcdVersion) -> Bool {
        (clusterVersion.major, clusterVersion.minor) <= (version.major, version.minor)
    }

    // MARK: membership

    /// How many learners the cluster takes at once: fixed at 1 before 3.6, `max-learners` (default
    /// 1) from 3.6.
    public func learnerLimit(options: [EtcdOption]) -> Int {
        guard minor >= 6, let option = options.first(where: { $0.key == "max-learners" }),
              case .int(let limit) = option.value, limit >= 1 else { return 1 }
        return limit
    }

    /// Whether etcd refuses `member add` while any voter is down (strict reconfig check, etcd
    /// issue 21640, relaxed in 3.5.30 and 3.6.11): a replacement's add must then wait until the
    /// dead member is removed.
    public var refusesAddWhileVoterDown: Bool {
        switch minor {
        case ...4: return true
        case 5: return version.patch < 30
        case 6: return version.patch < 11
        default: return false
        }
    }

    /// `snapshot-count`'s default: a quiet cluster writes its first snapshot after this many
    /// entries (3.6 lowered it).
    public var defaultSnapshotCount: Int { minor >= 6 ? 10_000 : 100_000 }

    // MARK: config keys

    /// What this line does with an `etcd:` key of the inventory.
    public enum KeyVerdict: Sendable, Equatable {
        /// Rendered as written.
        case accepted
        /// Rendered under its new name (3.6 still reads the old one, with a warning, but fails on
        /// some of its values).
        case renamed(to: String)
        /// Rendered into `feature-gates` as `GATE=VALUE`.
        case featureGate(String)
        /// Refused: this line removed it; `replacement` says what took its place.
        case removed(replacement: String)
        /// Refused: a key of a later line.
        case notYet(since: String)
    }

    public func verdict(forKey key: String) -> KeyVerdict {
        if minor <= 5 {
            if let since = EtcdKeyTable.addedIn36.contains(key) ? "3.6" : nil { return .notYet(since: since) }
            return .accepted
        }
        if let why = EtcdKeyTable.removedIn36[key] { return .removed(replacement: why) }
        if let gate = EtcdKeyTable.featureGates[key] {
            return minor == 6 ? .featureGate(gate) : .removed(replacement: "feature-gates: \(gate)=true (or =false)")
        }
        if let new = EtcdKeyTable.renamedIn36[key] {
            return minor == 6 ? .renamed(to: new) : .removed(replacement: new)
        }
        if minor >= 7, let why = EtcdKeyTable.removedIn37[key] { return .removed(replacement: why) }
        return .accepted
    }

    /// The inventory's options as this line reads them: renamed keys under their new names,
    /// `experimental-*` switches folded into one `feature-gates` (after any the inventory set).
    /// Keys the line refuses never get here: `Inventory.check(memberVersions:)` refused them.
    public func rendered(_ options: [EtcdOption]) -> [EtcdOption] {
        var kept: [EtcdOption] = []
        var gates: [String] = []
        for option in options {
            switch verdict(forKey: option.key) {
            case .renamed(let new): kept.append(EtcdOption(key: new, value: option.value))
            case .featureGate(let gate):
                if case .bool(let on) = option.value { gates.append("\(gate)=\(on)") }
            default: kept.append(option)
            }
        }
        guard !gates.isEmpty else { return kept }
        if let index = kept.firstIndex(where: { $0.key == "feature-gates" }), case .string(let set) = kept[index].value {
            kept[index].value = .string(([set] + gates).joined(separator: ","))
        } else {
            kept.append(EtcdOption(key: "feature-gates", value: .string(gates.joined(separator: ","))))
        }
        return kept
    }
}

/// The key changes of 3.6 and 3.7, from etcd's source: 3.6's `etcdmain/config.go`
/// `deprecatedFlags` and `embed/config.go` `experimentalFlagMigrationMap`, `server/features`
/// `ExperimentalFlagToFeatureMap`; CHANGELOG-3.6 (removed `--enable-v2`, `--proxy*`,
/// `--experimental-enable-v2v3`) and CHANGELOG-3.7 (every `--experimental-*` flag removed).
enum EtcdKeyTable {
    /// 3.6 moved these switches behind `--feature-gates`.
    static let featureGates: [String: String] = [
        "experimental-initial-corrupt-check": "InitialCorruptCheck",
        "experimental-compact-hash-check-enabled": "CompactHashCheck",
        "experimental-txn-mode-write-with-shared-buffer": "TxnModeWriteWithSharedBuffer",
        "experimental-stop-grpc-service-on-defrag": "StopGRPCServiceOnDefrag",
        "experimental-enable-lease-checkpoint": "LeaseCheckpoint",
        "experimental-enable-lease-checkpoint-persist": "LeaseCheckpointPersist",
    ]

    /// 3.6 renamed these (the old name still read, with a warning, until 3.7 removed it).
    static let renamedIn36: [String: String] = [
        "experimental-compact-hash-check-time": "compact-hash-check-time",
        "experimental-corrupt-check-time": "corrupt-check-time",
        "experimental-compaction-batch-limit": "compaction-batch-limit",
        "experimental-watch-progress-notify-interval": "watch-progress-notify-interval",
        "experimental-warning-apply-duration": "warning-apply-duration",
        "experimental-bootstrap-defrag-threshold-megabytes": "bootstrap-defrag-threshold-megabytes",
        "experimental-memory-mlock": "memory-mlock",
        "experimental-snapshot-catchup-entries": "snapshot-catchup-entries",
        "experimental-compaction-sleep-interval": "compaction-sleep-interval",
        "experimental-downgrade-check-time": "downgrade-check-time",
        "experimental-enable-distributed-tracing": "enable-distributed-tracing",
        "experimental-distributed-tracing-address": "distributed-tracing-address",
        "experimental-distributed-tracing-service-name": "distributed-tracing-service-name",
        "experimental-distributed-tracing-instance-id": "distributed-tracing-instance-id",
        "experimental-distributed-tracing-sampling-rate": "distributed-tracing-sampling-rate",
        "experimental-max-learners": "max-learners",
        "experimental-backend-bbolt-freelist-type": "backend-bbolt-freelist-type",
    ]

    /// Keys 3.6 removed outright (it ignores `enable-v2: true` in a config file without a word).
    static let removedIn36: [String: String] = [
        "enable-v2": "nothing: 3.6 serves no v2 API (a v2 discovery backend must run 3.4 or 3.5; v3 discovery needs none)",
        "experimental-enable-v2v3": "nothing: 3.6 serves no v2 API",
        "v2-deprecation": "nothing: 3.6 enforces its default and ignores the key",
        "proxy": "nothing: 3.6 removed the v2 proxy", "proxy-failure-wait": "nothing: 3.6 removed the v2 proxy",
        "proxy-refresh-interval": "nothing: 3.6 removed the v2 proxy", "proxy-dial-timeout": "nothing: 3.6 removed the v2 proxy",
        "proxy-write-timeout": "nothing: 3.6 removed the v2 proxy", "proxy-read-timeout": "nothing: 3.6 removed the v2 proxy",
    ]

    /// `experimental-*` keys 3.6 still read under their old name and 3.7 removed.
    static let removedIn37: [String: String] = [
        "experimental-peer-skip-client-san-verification": "peer-transport-security's skip-client-san-verification, which muster writes (it is unsafe: peers' certificates accepted for any address)",
    ]

    /// Keys a 3.4/3.5 member does not know (`backend-bbolt-freelist-type` is older than 3.6).
    static let addedIn36: Set<String> = Set(renamedIn36.values).union(["feature-gates"]).subtracting(EtcdKeys.known)

    /// Every key some known line accepts, for the loader's first, version-blind check.
    static let everyLine: Set<String> = EtcdKeys.known.union(featureGates.keys).union(renamedIn36.keys)
        .union(addedIn36).union(removedIn37.keys)
}
