// swift-tools-version:6.0
import PackageDescription

// Layers import only downward (ARCHITECTURE.md):
//   MusterBasics -> MusterYAML -> MusterInventory -> MusterPlan (pure) -> MusterWorkspace (disk, lock)
//   MusterInventory -> MusterImport (pure: Ansible inventory text to muster inventory text)
//   MusterBasics -> MusterSSH, MusterEtcd, MusterSandbox; MusterEtcd -> MusterDiscovery, MusterObjectStore (its HTTP client); MusterPKI (CLibCrypto, MusterBasics' atomic file writes)
//   CLibSSH2, CLibYAML, CLibCrypto: Debian's libssh2, libyaml and OpenSSL 3 libcrypto (no build cost)
//   MusterDeploy (workspace + ssh + etcd + pki) -> muster (thin CLI)
// Each target's dependencies are exactly what its files import.
let package = Package(
    name: "muster",
    platforms: [.macOS(.v15)],  // Synchronization's Mutex
    products: [
        .executable(name: "muster", targets: ["muster"]),
    ],
    // Exact versions: the help and render goldens, and every build, see the same dependencies
    // (Package.resolved stays out of git on these machines, whose package mirrors have their
    // own commit ids).
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        // etcd's gRPC Maintenance.Snapshot stream (HTTP/2): the gateway's JSON costs etcd twice the time.
        .package(url: "https://github.com/apple/swift-nio-http2", exact: "1.46.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2",
                       providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        // The libcrypto libssh2 already links: digests, and the cluster CA's keys and certificates.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .target(name: "MusterBasics", dependencies: ["CLibCrypto"]),
        .target(name: "MusterYAML", dependencies: ["CLibYAML"]),
        // The age file format (age-encryption.org/v1, X25519 recipients) on libcrypto: state exports.
        .target(name: "MusterAge", dependencies: ["CLibCrypto", "MusterBasics"]),
        .target(name: "MusterInventory", dependencies: ["MusterBasics", "MusterYAML"]),
        // Pure: inventory values to plan and rendered files; no disk, no process, no network.
        .target(name: "MusterPlan", dependencies: ["MusterBasics", "MusterYAML", "MusterInventory"]),
        // Everything a run reads or keeps on the controller: inventory file, state dir and its
        // lock, tokens, cluster records, the member binary's version, templates, rendered trees.
        // `muster import ansible`: an Ansible inventory to a muster inventory; pure, text in, text out.
        .target(name: "MusterImport", dependencies: ["MusterYAML", "MusterInventory"]),
        .target(name: "MusterWorkspace", dependencies: ["MusterBasics", "MusterInventory", "MusterPlan"]),
        .target(name: "MusterSSH", dependencies: ["CLibSSH2", "MusterBasics"]),
        .target(name: "MusterEtcd", dependencies: [
            "MusterBasics",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
        ], exclude: ["VERIFY_JSON.md"]),
        // S3-compatible object storage (SigV4, multipart uploads) over MusterEtcd's HTTP/1.1
        // client (`HTTPTransport`, package access): snapshots off the controller.
        .target(name: "MusterObjectStore", dependencies: [
            "MusterBasics", "MusterEtcd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // Cluster CA and member/client certificates, on libcrypto's X.509 API (no openssl process).
        .target(name: "MusterPKI", dependencies: ["CLibCrypto", "MusterBasics"]),
        // `muster discovery serve`: a discovery.etcd.io-compatible service backed by etcd, its
        // small HTTP/1.1 server straight on SwiftNIO (as MusterEtcd's client is).
        .target(name: "MusterDiscovery", dependencies: [
            "MusterEtcd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .target(name: "MusterSandbox", dependencies: ["MusterBasics", "MusterInventory"]),
        .target(name: "MusterDeploy", dependencies: [
            "MusterBasics", "MusterYAML", "MusterInventory", "MusterPlan", "MusterWorkspace", "MusterSSH", "MusterEtcd", "MusterPKI",
            "MusterObjectStore",
        ]),
        .executableTarget(name: "muster", dependencies: [
            "MusterBasics", "MusterYAML", "MusterInventory", "MusterPlan", "MusterWorkspace", "MusterImport",
            "MusterEtcd", "MusterDeploy", "MusterSandbox", "MusterPKI", "MusterDiscovery", "MusterAge", "MusterObjectStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // bench/snapshot.sh's client: EtcdClient's snapshot over gRPC or the gateway, timed.
        .executableTarget(name: "muster-snapshot-bench", dependencies: ["MusterEtcd"], path: "bench/SnapshotBench"),
        // Harness code several test targets share (free ports, child processes, temporary
        // directories, a loopback etcd). Used only by tests; no product depends on it.
        .target(name: "MusterTestSupport", path: "Tests/MusterTestSupport"),
        .testTarget(name: "MusterBasicsTests", dependencies: ["MusterBasics", "CLibCrypto"]),
        .testTarget(name: "MusterYAMLTests", dependencies: ["MusterYAML"]),
        .testTarget(name: "MusterAgeTests", dependencies: ["MusterAge"]),
        .testTarget(name: "MusterInventoryTests", dependencies: ["MusterInventory", "MusterYAML"]),
        .testTarget(name: "MusterImportTests", dependencies: ["MusterImport", "MusterInventory", "MusterYAML"]),
        // Golden trees are read from the source tree (#filePath), not bundled.
        .testTarget(name: "MusterPlanTests", dependencies: ["MusterBasics", "MusterInventory", "MusterPlan", "MusterWorkspace", "MusterTestSupport"],
                    exclude: ["Golden"]),
        .testTarget(name: "MusterSSHTests", dependencies: ["MusterBasics", "MusterSSH"]),
        .testTarget(name: "MusterEtcdTests", dependencies: [
            "MusterBasics", "MusterEtcd", "MusterPKI", "MusterTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
        ]),
        .testTarget(name: "MusterSandboxTests", dependencies: ["MusterBasics", "MusterSandbox", "MusterSSH"]),
        .testTarget(name: "MusterDeployTests", dependencies: [
            "MusterBasics", "MusterInventory", "MusterPlan", "MusterWorkspace", "MusterSSH", "MusterEtcd", "MusterPKI",
            "MusterDeploy", "MusterSandbox", "MusterTestSupport",
        ]),
        .testTarget(name: "MusterObjectStoreTests", dependencies: ["MusterObjectStore", "MusterBasics", "MusterTestSupport"]),
        .testTarget(name: "MusterPKITests", dependencies: ["MusterPKI", "MusterBasics", "MusterTestSupport"]),
        .testTarget(name: "MusterDiscoveryTests", dependencies: [
            "MusterDiscovery", "MusterEtcd", "MusterTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "MusterCLITests", dependencies: ["MusterTestSupport"], exclude: ["Golden"]),
    ]
)
