import ArgumentParser
import Foundation
import MusterDeploy
import MusterSandbox

/// Flags of the commands that contact hosts.
struct RemoteOptions: ParsableArguments {
    @Flag(help: "Record unknown host keys (like StrictHostKeyChecking=accept-new); changed keys are always refused.")
    var acceptNewHostKeys = false

    @Option(help: "At most this many hosts are worked on at once.")
    var parallel = 16

    func validate() throws {
        guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be 1-256") }
    }

    var runOptions: RunOptions {
        var options = RunOptions()
        options.acceptNewHostKeys = acceptNewHostKeys
        options.parallel = parallel
        options.addressGuard = AddressGuard.check
        return options
    }
}

/// Before muster connects to an address of a sandbox, the route must leave through that
/// sandbox's bridge. With MUSTER_SANDBOX_ONLY=1 (tests, benchmarks, the README demo) every
/// non-loopback address must be a sandbox's.
enum AddressGuard {
    @Sendable static func check(_ address: String) throws {
        if address.hasPrefix("127.") || address == "::1" || address == "localhost" { return }
        let sandboxOnly = ProcessInfo.processInfo.environment["MUSTER_SANDBOX_ONLY"] == "1"
        if let state = Sandbox.status(), address == state.gateway { return }  // the controller's side of the bridge
        if sandboxOnly {
            try Sandbox.checkRoute(to: address)
            return
        }
        if let state = Sandbox.status(), inSubnet(address, state.subnet) {
            try Sandbox.checkRoute(to: address, state: state)
        }
    }

    static func inSubnet(_ address: String, _ subnet: String) -> Bool {
        guard let prefix = subnet.split(separator: "/").first else { return false }
        let network = prefix.split(separator: ".").prefix(3).joined(separator: ".")
        return address.hasPrefix(network + ".")
    }
}
