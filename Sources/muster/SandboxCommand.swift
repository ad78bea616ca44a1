import ArgumentParser
import Foundation
import MusterSandbox

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Real hosts on this machine: network namespaces with their own sshd and filesystem.",
        subcommands: [SandboxUp.self, SandboxDown.self, SandboxStatusCommand.self, SandboxInventory.self])
}

struct SandboxLocation: ParsableArguments {
    @Option(help: "The sandbox's state directory.")
    var stateDir: String = Sandbox.defaultStateDir
}

struct SandboxUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "up", abstract: "Create the sandbox hosts.")
    @OptionGroup var location: SandboxLocation
    @Option(help: "How many hosts.") var hosts = 3
    @Option(name: .customLong("init"),
            help: "What runs as each host's pid 1: none (sshd), systemd (booted by systemd-nspawn) or mixed (host1 systemd, host2 none, ...).")
    var initMode = "none"

    func validate() throws {
        guard SandboxInitMode(rawValue: initMode) != nil else {
            throw ValidationError("--init must be none, systemd or mixed")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let mode = SandboxInitMode(rawValue: initMode) ?? .none
            let (state, alreadyRunning) = try Sandbox.up(hosts: hosts, initMode: mode, stateDir: location.stateDir) { print($0) }
            print(alreadyRunning ? "sandbox already up" : "sandbox up")
            for host in state.hosts { print("  \(host.name)  \(host.address)  init \(host.initSystem.rawValue)") }
        }
    }
}

struct SandboxDown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop every sandbox process and remove it.")
    @OptionGroup var location: SandboxLocation
    func run() async throws {
        try await reportingErrors {
            try Sandbox.down(stateDir: location.stateDir) { print($0) }
        }
    }
}

struct SandboxStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Say what is up.")
    @OptionGroup var location: SandboxLocation
    func run() async throws {
        guard let status = Sandbox.statusReport(stateDir: location.stateDir) else {
            print("no sandbox in \(location.stateDir)")
            return
        }
        print(status.report)
        if !status.healthy { throw ExitCode(1) }
    }
}

struct SandboxInventory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inventory", abstract: "Write an inventory for the sandbox hosts and print its path.")
    @OptionGroup var location: SandboxLocation
    @Option(help: "static, discovery or dns.") var bootstrap = "static"
    @Option(help: "Where to write it.") var out: String?
    @Option(help: "The member binary the inventory names.") var memberBinary = "/usr/bin/etcd"
    @Flag(help: "Clusters on plain http (default: TLS, muster's default; a discovery backend is plain either way).") var plainHttp = false

    func run() async throws {
        try await reportingErrors {
            guard let state = Sandbox.status(stateDir: location.stateDir) else {
                throw ValidationError("no sandbox in \(location.stateDir): run `muster sandbox up` first")
            }
            guard let mode = SandboxBootstrap(rawValue: bootstrap) else {
                throw ValidationError("--bootstrap must be static, discovery or dns")
            }
            let path = out ?? "\(location.stateDir)/inventory-\(bootstrap).yml"
            print(try Sandbox.writeInventory(state: state, bootstrap: mode, to: path, memberBinary: memberBinary, tls: !plainHttp))
        }
    }
}
