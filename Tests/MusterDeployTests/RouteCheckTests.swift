import Foundation
import Testing
@testable import MusterSandbox

/// The network rule's route check, on `ip -o route get` text as the kernel prints it: the
/// sandbox bridge's own address routes through `lo` as a `local` route, and must be allowed
/// (services for the hosts, `discovery serve` among them, listen there); any other address of
/// this machine must not.
@Suite struct RouteCheckTests {
    private let sandbox = SandboxState(phase: .running, slot: 0, bridge: "mstr-br0", subnet: "10.213.7.0/24",
                                       gateway: "10.213.7.1", domain: "sandbox.test", hosts: [], clientKeyPath: "",
                                       knownHostsPath: "", stateDir: "/var/lib/muster/sandbox-route-test", createdAt: Date())

    private let text = """
        local 10.213.7.1 dev lo table local src 10.213.7.1 uid 0 \\    cache <local> 
        10.213.7.11 dev mstr-br0 src 10.213.7.1 uid 0 \\    cache 
        local 192.168.1.5 dev lo table local src 192.168.1.5 uid 0 \\    cache <local> 
        8.8.8.8 via 192.168.1.1 dev eth0 src 192.168.1.5 uid 0 \\    cache 
        unicast 10.213.7.12 dev mstr-br0 src 10.213.7.1 uid 0 \\    cache 
        """

    @Test func localRoutesAreReadWithTheirDevice() {
        let routes = Network.routes(in: text)
        #expect(routes["10.213.7.1"] == Network.Route(device: "lo", isLocal: true))
        #expect(routes["10.213.7.11"] == Network.Route(device: "mstr-br0", isLocal: false))
        #expect(routes["192.168.1.5"] == Network.Route(device: "lo", isLocal: true))
        #expect(routes["8.8.8.8"] == Network.Route(device: "eth0", isLocal: false))
        #expect(routes["10.213.7.12"] == Network.Route(device: "mstr-br0", isLocal: false))
        #expect(routes["local"] == nil, "a route type is no destination")
    }

    @Test func theBridgeAddressIsASandboxAddressAndNoOtherLocalOneIs() throws {
        let routes = Network.routes(in: text)
        func only(_ address: String) -> [String: Network.Route] { [address: routes[address]!] }
        // MUSTER_SANDBOX_ONLY=1: against every registered sandbox.
        try Sandbox.checkRoutes(only("10.213.7.1"), registered: [sandbox])
        try Sandbox.checkRoutes(only("10.213.7.11"), registered: [sandbox])
        #expect(throws: SandboxError.self) { try Sandbox.checkRoutes(only("192.168.1.5"), registered: [sandbox]) }
        #expect(throws: SandboxError.self) { try Sandbox.checkRoutes(only("8.8.8.8"), registered: [sandbox]) }
        #expect(throws: SandboxError.self) { try Sandbox.checkRoutes(only("10.213.7.1"), registered: []) }
        // Against one sandbox.
        try Sandbox.checkRoutes(only("10.213.7.1"), state: sandbox)
        try Sandbox.checkRoutes(only("10.213.7.12"), state: sandbox)
        #expect(throws: SandboxError.self) { try Sandbox.checkRoutes(only("192.168.1.5"), state: sandbox) }
        #expect(throws: SandboxError.self) { try Sandbox.checkRoutes(only("8.8.8.8"), state: sandbox) }
    }

    /// The same through the kernel's own answer (`ip -o route get`), on the deploy sandbox: its
    /// bridge's address passes the check `MUSTER_SANDBOX_ONLY=1` makes, and the one against it.
    @Test func theDeploySandboxBridgeAddressPassesTheRealRouteCheck() throws {
        let state = try DeploySandbox.acquireAll()
        try Sandbox.checkRoutes(to: [state.gateway])
        try Sandbox.checkRoutes(to: [state.gateway], state: state)
        try Sandbox.checkRoutes(to: state.hosts.map(\.address))
    }
}
