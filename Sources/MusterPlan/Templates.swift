import Foundation
import Mustache
import MusterBasics
import MusterYAML

/// Escapes every `{{value}}` of a YAML template into a scalar that reads back as the same string.
struct YAMLContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { YAMLEmitter.scalar(text) }
}

/// Quotes every `{{value}}` of a shell template for a POSIX shell.
struct ShellContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { Shell.quote(text) }
}

public struct TemplateError: Error, CustomStringConvertible {
    public var description: String
}

/// The files in `templates/`, loaded once per run.
public struct TemplateSet: Sendable {
    public static let names = ["conf.yml", "dnsmasq.conf", "etcd.service", "start-member.sh"]
    public let directory: String
    private let templates: [String: MustacheTemplate]

    public init(directory: String) throws {
        MustacheContentTypes.register(YAMLContentType(), named: "YAML")
        MustacheContentTypes.register(ShellContentType(), named: "SHELL")
        self.directory = directory
        var loaded: [String: MustacheTemplate] = [:]
        for name in Self.names {
            let path = "\(directory)/\(name).mustache"
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TemplateError(description: "template \(path) is missing (pass --templates DIR or set MUSTER_TEMPLATES)")
            }
            do {
                loaded[name] = try MustacheTemplate(string: String(decoding: data, as: UTF8.self))
            } catch {
                throw TemplateError(description: "template \(path) does not parse: \(error)")
            }
        }
        templates = loaded
    }

    func render(_ name: String, _ context: [String: Any]) -> String {
        templates[name]!.render(context)
    }

    /// Finds `templates/` from any working directory: `--templates`, then `$MUSTER_TEMPLATES`,
    /// then beside the executable (`share/muster/templates` of an install, or the checkout that
    /// built it: `.build/<config>/muster` sits three levels under the package root).
    public static func locate(override: String?) -> String {
        if let override { return override }
        if let fromEnvironment = ProcessInfo.processInfo.environment["MUSTER_TEMPLATES"] { return fromEnvironment }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<5 {
            for candidate in ["templates", "share/muster/templates"] {
                let path = directory.appendingPathComponent(candidate).path
                if FileManager.default.fileExists(atPath: path + "/conf.yml.mustache") { return path }
            }
            directory.deleteLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath + "/templates"
    }
}
