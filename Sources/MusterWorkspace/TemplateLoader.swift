import Foundation
import MusterPlan

/// Finds and reads `templates/`, so that the plan layer gets texts and never touches the disk.
public enum TemplateLoader {
    public static func load(directory: String) throws -> TemplateSet {
        var texts: [String: String] = [:]
        for name in TemplateSet.names {
            if let data = FileManager.default.contents(atPath: "\(directory)/\(name).mustache") {
                texts[name] = String(decoding: data, as: UTF8.self)
            }
        }
        return try TemplateSet(texts: texts, origin: directory)
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
