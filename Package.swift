// swift-tools-version:6.0
import PackageDescription

// Layers import only downward:
//   MusterBasics -> MusterYAML -> MusterInventory -> MusterPlan
//   MusterBasics -> MusterSSH, MusterEtcd, MusterSandbox
//   MusterDeploy (plan + ssh + etcd) -> muster (thin CLI)
let package = Package(
    name: "muster",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "muster", targets: ["muster"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2",
                       providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        .target(name: "MusterBasics",
                dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "MusterYAML", dependencies: ["CLibYAML"]),
        .target(name: "MusterInventory", dependencies: ["MusterBasics", "MusterYAML"]),
        .target(name: "MusterPlan", dependencies: [
            "MusterBasics", "MusterYAML", "MusterInventory",
            .product(name: "Mustache", package: "swift-mustache"),
        ]),
        .target(name: "MusterSSH", dependencies: ["CLibSSH2", "MusterBasics"]),
        .target(name: "MusterEtcd", dependencies: [
            "MusterBasics",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], exclude: ["VERIFY_JSON.md"]),
        // Cluster CA and member/client certificates, in Swift (no openssl).
        .target(name: "MusterPKI", dependencies: [
            "MusterBasics",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `muster discovery serve`: a discovery.etcd.io-compatible service backed by etcd, its
        // small HTTP/1.1 server straight on SwiftNIO (already here for AsyncHTTPClient).
        .target(name: "MusterDiscovery", dependencies: [
            "MusterBasics", "MusterEtcd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .target(name: "MusterSandbox", dependencies: ["MusterBasics"]),
        .target(name: "MusterDeploy", dependencies: [
            "MusterBasics", "MusterYAML", "MusterInventory", "MusterPlan", "MusterSSH", "MusterEtcd", "MusterPKI",
        ]),
        .executableTarget(name: "muster", dependencies: [
            "MusterBasics", "MusterYAML", "MusterInventory", "MusterPlan", "MusterSSH",
            "MusterEtcd", "MusterDeploy", "MusterSandbox", "MusterPKI", "MusterDiscovery",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Harness code several test targets share (free ports, child processes, temporary
        // directories, a loopback etcd). Used only by tests; no product depends on it.
        .target(name: "MusterTestSupport", path: "Tests/MusterTestSupport"),
        .testTarget(name: "MusterBasicsTests", dependencies: ["MusterBasics"]),
        .testTarget(name: "MusterYAMLTests", dependencies: ["MusterYAML"]),
        .testTarget(name: "MusterInventoryTests", dependencies: ["MusterInventory"]),
        .testTarget(name: "MusterPlanTests", dependencies: ["MusterPlan"]),
        .testTarget(name: "MusterSSHTests", dependencies: ["MusterSSH"]),
        .testTarget(name: "MusterEtcdTests", dependencies: ["MusterEtcd", "MusterPKI", "MusterTestSupport"]),
        .testTarget(name: "MusterSandboxTests", dependencies: ["MusterSandbox", "MusterSSH"]),
        .testTarget(name: "MusterDeployTests", dependencies: ["MusterDeploy", "MusterSandbox", "MusterTestSupport"]),
        .testTarget(name: "MusterPKITests", dependencies: ["MusterPKI", "MusterTestSupport"]),
        .testTarget(name: "MusterDiscoveryTests", dependencies: [
            "MusterDiscovery", "MusterEtcd", "MusterTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
    ]
)
