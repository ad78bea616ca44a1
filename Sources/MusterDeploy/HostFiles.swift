import Foundation
import MusterBasics
import MusterPlan

/// Which rendered files a host lacks, and the one command per host that writes them.
enum HostFiles {
    /// The cluster's files (and its dnsmasq conf) that differ from what the hosts hold.
    static func toWrite(for cluster: ClusterPlan, in plan: Plan, extra: [RenderedFile],
                        facts: [String: HostFacts]) -> [RenderedFile] {
        (plan.files + extra).filter { file in
            let belongs = cluster.members.contains { $0.host == file.host && (file.path.hasPrefix($0.paths.configDir + "/") || file.path == $0.paths.unit) }
                || (file.host == cluster.dns?.serverHost && file.path == cluster.dns?.configPath)
            guard belongs, let hostFacts = facts[file.host] else { return belongs }
            return !file.isCurrent(on: hostFacts)
        }
    }

    /// One command per host for the wave: the etcd user and directories where missing, and the
    /// changed files. Hosts already in shape get an empty script (and no channel, unless a
    /// binary waits to be placed).
    static func applyScripts(for clusters: [ClusterPlan], files: [String: [RenderedFile]],
                             facts: [String: HostFacts]) -> [(String, [(script: ApplyScript, label: String)])] {
        var scripts: [String: [ApplyScript]] = [:]
        var involved: [String: [String]] = [:]  // host -> clusters, in wave order
        var written: [String: [String: Int]] = [:]
        func involve(_ host: String, _ cluster: String) {
            if involved[host]?.contains(cluster) != true { involved[host, default: []].append(cluster) }
        }
        for cluster in clusters {
            for member in cluster.members {
                var list = scripts[member.host] ?? [ApplyScript()]
                let hostFacts = facts[member.host]
                if hostFacts?.hasEtcdUser != true, !list.contains(where: \.ensuresEtcdUser) {
                    list[list.count - 1].ensureEtcdUser(home: member.paths.data)
                }
                let needed = [member.paths.configDir, member.paths.data, member.paths.runDir, member.paths.logDir]
                if !needed.allSatisfy({ hostFacts?.existingDirectories.contains($0) == true }) { list[list.count - 1].ensureDirectories(member) }
                scripts[member.host] = list
                involve(member.host, cluster.name)
            }
            for file in files[cluster.name] ?? [] {
                var list = scripts[file.host] ?? [ApplyScript()]
                // A script is one argument of `sh -c`: many TLS clusters on one host get several.
                if list[list.count - 1].approximateLength + file.contents.utf8.count * 2 > ApplyScript.lengthLimit,
                   !list[list.count - 1].isEmpty {
                    list.append(ApplyScript())
                }
                list[list.count - 1].write(file)
                scripts[file.host] = list
                written[file.host, default: [:]][cluster.name, default: 0] += 1
                involve(file.host, cluster.name)
            }
        }
        return scripts.keys.sorted().map { host in
            let unchanged = (involved[host] ?? []).filter { written[host]?[$0] == nil }
            var parts = (involved[host] ?? []).compactMap { name in written[host]?[name].map { "\(name): \($0) file(s) written" } }
            if !unchanged.isEmpty { parts.append("unchanged: \(unchanged.joined(separator: ", "))") }
            let label = parts.joined(separator: ", ")
            let list = scripts[host] ?? [ApplyScript()]
            return (host, list.enumerated().map { index, script in
                (script, list.count == 1 ? label : "\(label) (part \(index + 1) of \(list.count))")
            })
        }
    }
}
