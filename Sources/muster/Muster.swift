import ArgumentParser

@main
struct Muster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster",
        abstract: "Bring etcd clusters up on hosts over SSH, render their configs, verify them.",
        version: "0.1.0",
        subcommands: [Render.self, Up.self, Verify.self, Down.self, Env.self, SandboxCommand.self, DiscoveryCommand.self])
}
