import ArgumentParser
import Foundation
import MusterImport
import MusterInventory
import MusterYAML

/// `muster import ansible`: the conversion is MusterImport's; this reads the file and writes
/// the result.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Write a muster inventory from another tool's inventory.",
        subcommands: [ImportAnsibleCommand.self])
}

struct ImportAnsibleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ansible",
        abstract: "Write a muster inventory for the etcd group of an Ansible inventory (INI or YAML).",
        discussion: "Host key: etcd_member_name, else the Ansible host name; address: ip, else ansible_host; ansible_user, ansible_port and ansible_ssh_private_key_file become the host's ssh settings. Reads INI groups with inline host variables, [GROUP:vars], [GROUP:children] and ranges (etcd[1:3]), and YAML all.children; anything else exits 2 naming FILE:LINE:COLUMN. No host is contacted.")

    @Argument(help: "The Ansible inventory file (INI, or YAML when it ends in .yml/.yaml or reads as YAML).")
    var ansibleInventory: String

    @Option(help: "Write the muster inventory to this file instead of standard output.")
    var out: String?

    func run() async throws {
        try await reportingErrors {
            let text = try AnsibleImport.convert(try read(ansibleInventory), file: ansibleInventory)
            guard let out else {
                FileHandle.standardOutput.write(Data(text.utf8))
                return
            }
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
            } catch {
                throw ValidationError("cannot write \(out): \(error.localizedDescription)")
            }
        }
    }

    /// At most one byte past the limit: a huge file, or /dev/zero, is never read whole.
    private func read(_ path: String) throws -> Data {
        guard let handle = FileHandle(forReadingAtPath: path),
              let data = try? handle.read(upToCount: YAMLLimits.standard.documentBytes + 1) else {
            throw InventoryError.located([Diagnostic(file: path, mark: Mark(line: 1, column: 1), message: "cannot read the Ansible inventory file")], in: Data())
        }
        try? handle.close()
        return data
    }
}
