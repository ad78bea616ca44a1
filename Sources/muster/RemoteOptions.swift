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
    @Sendable static func check(_ addresses: [String]) throws {
        let state = Sandbox.status()
        let remote = addresses.filter { address in
            !(address.hasPrefix("127.") || address == "::1" || address == "localhost")
                && address != state?.gateway  // the controller's side of the bridge
        }
        guard !remote.isEmpty else { return }
        if ProcessInfo.processInfo.environment["MUSTER_SANDBOX_ONLY"] == "1" {
            try Sandbox.checkRoutes(to: remote)
            return
        }
        if let state {
            let inSandbox = remote.filter { inSubnet($0, state.subnet) }
            if !inSandbox.isEmpty { try Sandbox.checkRoutes(to: inSandbox, state: state) }
        }
    }

    static func inSubnet(_ address: String, _ subnet: String) -> Bool {
        guard let prefix = subnet.split(separator: "/").first else { return false }
        let network = prefix.split(separator: ".").prefix(3).joined(separator: ".")
        return address.hasPrefix(network + ".")
    }
}
