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

    /// The templates render and run as root on every host, so they come from where muster itself
    /// is, never from the working directory: `--templates`, then `$MUSTER_TEMPLATES`, then beside
    /// the running executable as the kernel names it (`/proc/self/exe`: `argv[0]` is a bare
    /// `muster` when run from `PATH`).
    public static func locate(override: String?,
                              environment: [String: String] = ProcessInfo.processInfo.environment,
                              executable: String? = runningExecutable()) throws -> String {
        if let override { return override }
        if let fromEnvironment = environment["MUSTER_TEMPLATES"] { return fromEnvironment }
        guard let executable else {
            throw TemplateError(description: "cannot tell where the muster binary is (/proc/self/exe unreadable) to find its templates; pass --templates DIR or set MUSTER_TEMPLATES")
        }
        let candidates = besideExecutable(executable)
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate + "/conf.yml.mustache") {
            return candidate
        }
        throw TemplateError(description: "no templates beside the muster binary \(executable) (looked in \(candidates.joined(separator: ", "))); pass --templates DIR or set MUSTER_TEMPLATES")
    }

    /// The two layouts muster runs from: an install (`PREFIX/bin/muster` with
    /// `PREFIX/share/muster/templates`) and a SwiftPM build inside its checkout
    /// (`ROOT/.build/[TRIPLE/]CONFIG/muster` with `ROOT/templates`).
    static func besideExecutable(_ executable: String) -> [String] {
        let binDirectory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        var candidates = [binDirectory.deletingLastPathComponent().appendingPathComponent("share/muster/templates").path]
        let components = binDirectory.pathComponents
        if let build = components.lastIndex(of: ".build"), build > 0 {
            let root = NSString.path(withComponents: Array(components[..<build]))
            candidates.append(root + "/templates")
        }
        return candidates
    }

    /// The executable's resolved path, as the kernel keeps it.
    public static func runningExecutable() -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }
}
