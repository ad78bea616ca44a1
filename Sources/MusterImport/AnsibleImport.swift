import Foundation
import MusterInventory
import MusterYAML

/// `muster import ansible`: an Ansible inventory (INI or YAML) in, a muster inventory of its
/// `etcd` group out. Pure: bytes in, text out; every refusal names FILE:LINE:COLUMN of the
/// Ansible file (an `InventoryError`, exit 2).
public enum AnsibleImport {
    public enum Format: Sendable { case ini, yaml }

    /// `file` names the source in messages and in the output's header.
    public static func convert(_ data: Data, file: String) throws -> String {
        do {
            guard data.count <= YAMLLimits.standard.documentBytes else {
                throw ImportProblem(Mark(line: 1, column: 1), "the file is larger than \(YAMLLimits.standard.documentBytes) bytes")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ImportProblem(firstInvalidUTF8(in: data), "the file is not UTF-8 text")
            }
            let inventory: AnsibleInventory
            switch format(of: text, file: file) {
            case .yaml:
                guard let root = try YAMLParser.parse(data) else { throw ImportProblem(Mark(line: 1, column: 1), "the inventory is empty") }
                inventory = try YAMLInventoryReader.read(root)
            case .ini:
                inventory = try INIInventoryReader.read(text)
            }
            let (group, hosts) = try EtcdHosts.resolve(inventory)
            let output = MusterInventoryText.render(hosts, source: file)
            // The output must be an inventory muster takes: a refusal here is the import's own
            // bug, but it still points at the group it came from.
            do {
                _ = try InventoryLoader.parse(output, file: "(imported from \(file))")
            } catch let error as InventoryError {
                throw ImportProblem(group.mark, "the imported inventory does not load: \(error.diagnostics.first?.message ?? "\(error)")")
            }
            return output
        } catch let problem as ImportProblem {
            throw InventoryError.located([Diagnostic(file: file, mark: problem.mark, message: problem.message)], in: data)
        } catch let syntax as YAMLSyntaxError {
            throw InventoryError.located([Diagnostic(file: file, mark: syntax.mark, message: syntax.message)], in: data)
        }
    }

    /// YAML by extension (`.yml`, `.yaml`, `.json`), or when the first line that is not a
    /// comment is `---` or a bare `key:`; INI otherwise (Ansible's `hosts` files have no
    /// extension).
    public static func format(of text: String, file: String) -> Format {
        let lowered = file.lowercased()
        if [".yml", ".yaml", ".json"].contains(where: { lowered.hasSuffix($0) }) { return .yaml }
        for scalars in INIInventoryReader.lines(of: text) {
            let line = String(String.UnicodeScalarView(scalars)).trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line == "---" || line.hasPrefix("{") { return .yaml }
            let content = line.split(separator: "#", maxSplits: 1).first.map(String.init)?.trimmingSpaces ?? line
            return content.hasSuffix(":") && !content.hasPrefix("[") && !content.contains("=") ? .yaml : .ini
        }
        return .ini
    }

    private static func firstInvalidUTF8(in data: Data) -> Mark {
        var valid = 0
        var iterator = data.makeIterator()
        var decoder = UTF8()
        var offset = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar); valid = offset
            case .emptyInput: break loop
            case .error: break loop
            }
        }
        return SourceLines.mark(ofOffset: valid, in: data)
    }
}
