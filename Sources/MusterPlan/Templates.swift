public struct TemplateError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// The templates of `templates/`, compiled once per run (`Template`: the Mustache subset they
/// are written in, rendered from typed values). Reading them from disk is the workspace's job
/// (`TemplateLoader`); this stays a value so that planning and rendering are pure.
public struct TemplateSet: Sendable {
    public static let names = ["conf.yml", "dnsmasq.conf", "etcd.service", "start-member.sh"]
    /// Where the texts came from, for messages.
    public let origin: String
    let confYML: Template
    let dnsmasqConf: Template
    let etcdService: Template
    let startMember: Template

    /// `texts` by name (`conf.yml`, ...); every name of `names` must be there. A construct the
    /// subset does not support is refused at its `ORIGIN/NAME.mustache:LINE:COLUMN`.
    public init(texts: [String: String], origin: String) throws {
        self.origin = origin
        func compile(_ name: String) throws -> Template {
            guard let text = texts[name] else {
                throw TemplateError(description: "template \(origin)/\(name).mustache is missing (pass --templates DIR or set MUSTER_TEMPLATES)")
            }
            do {
                return try Template(text, file: "\(origin)/\(name).mustache")
            } catch {
                throw TemplateError(description: "template \(error.description)")
            }
        }
        confYML = try compile("conf.yml")
        dnsmasqConf = try compile("dnsmasq.conf")
        etcdService = try compile("etcd.service")
        startMember = try compile("start-member.sh")
    }
}
