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

/// The templates of `templates/`, parsed once per run. Reading them from disk is the
/// workspace's job (`TemplateLoader`); this stays a value so that planning and rendering are pure.
public struct TemplateSet: Sendable {
    public static let names = ["conf.yml", "dnsmasq.conf", "etcd.service", "start-member.sh"]
    /// Where the texts came from, for messages.
    public let origin: String
    private let templates: [String: MustacheTemplate]

    /// `texts` by name (`conf.yml`, ...); every name of `names` must be there.
    public init(texts: [String: String], origin: String) throws {
        MustacheContentTypes.register(YAMLContentType(), named: "YAML")
        MustacheContentTypes.register(ShellContentType(), named: "SHELL")
        self.origin = origin
        var loaded: [String: MustacheTemplate] = [:]
        for name in Self.names {
            guard let text = texts[name] else {
                throw TemplateError(description: "template \(origin)/\(name).mustache is missing (pass --templates DIR or set MUSTER_TEMPLATES)")
            }
            do {
                loaded[name] = try MustacheTemplate(string: text)
            } catch {
                throw TemplateError(description: "template \(origin)/\(name).mustache does not parse: \(error)")
            }
        }
        templates = loaded
    }

    func render(_ name: String, _ context: [String: Any]) -> String {
        templates[name]!.render(context)
    }
}
