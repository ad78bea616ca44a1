import ArgumentParser
import Foundation
import MusterBasics
import MusterImport
import MusterInventory

/// `muster init`: a commented first inventory, checked by the inventory loader before it is shown
/// or written.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a commented inventory to start from.",
        discussion: "With --hosts, one member per address (etcd1, etcd2, ...); without, an example on documentation addresses. Contacts no host; refuses to overwrite a file without --force.")

    @Option(help: "The hosts' addresses, comma-separated (IPv4 or IPv6: etcd listens on addresses).")
    var hosts: String?

    @Option(help: "How the cluster bootstraps: static, discovery (through a backend cluster of its own) or dns (DNS SRV served by dnsmasq).")
    var bootstrap: StarterInventory.Bootstrap = .staticCluster

    @Option(help: "Write the inventory to this file instead of standard output.")
    var out: String?

    @Flag(help: "Overwrite --out when it exists.")
    var force = false

    func run() async throws {
        try await reportingErrors {
            let addresses = try parsedAddresses()
            let text = StarterInventory.render(addresses: addresses, bootstrap: bootstrap)
            // The text must load as written: a refusal here is init's own bug, said before a file exists.
            _ = try InventoryLoader.parse(text, file: out ?? "(muster init)")
            guard let out else {
                FileHandle.standardOutput.write(Data(text.utf8))
                return
            }
            if !force && FileManager.default.fileExists(atPath: out) {
                throw MusterError(.usage, "\(out) exists: pick another --out, or add --force to overwrite it")
            }
            try AtomicFile.write(Data(text.utf8), to: out, mode: 0o644)
            print("wrote \(out): `muster render \(Shell.quote(out))` shows what it makes")
        }
    }

    private func parsedAddresses() throws -> [String] {
        guard let hosts else { return [] }
        let addresses = hosts.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for address in addresses where !IPAddress.isLiteral(address) {
            throw MusterError(.usage, "--hosts: \(String(reflecting: address)) is not an IP address (etcd listens on addresses; names go in a host's fqdn:)")
        }
        if Set(addresses).count != addresses.count {
            throw MusterError(.usage, "--hosts: an address is named twice")
        }
        return addresses
    }
}

extension StarterInventory.Bootstrap: ExpressibleByArgument {}
