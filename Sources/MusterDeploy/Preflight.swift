import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPlan
import MusterSSH
import MusterWorkspace

/// One command per host that gathers facts, then every problem at once, before anything changes.
struct Preflight {
    let progress: Progress
    /// Named in refusals about data: a copied inventory gets a new state dir, and with it new
    /// tokens and IDs.
    let stateDirectory: String
    /// This run's state dir as the hosts know it (nil: the hosts' markers are not compared).
    var identity: StateIdentity?
    /// By cluster: the token of its present incarnation (none for a cluster an earlier muster
    /// recorded).
    var incarnations: [String: String] = [:]
    /// By TLS cluster: what the CA files beside each member must hold.
    var authorities: [String: Authorities] = [:]
    /// Measure fdatasync on the filesystem of each member's data dir before its first start
    /// (`up --skip-disk-check` turns it off).
    var checkDisks = true

    /// A TLS cluster's CAs as this state holds them (or as this run just made them).
    struct Authorities: Sendable {
        var caSHA256: String
        var peerCASHA256: String
        /// The state had no CA: this run made one, in memory so far.
        var madeNow: Bool
        var pkiDirectory: String
    }

    /// Each host's preflight command: its facts and those of every file and directory muster
    /// would write there. Runs as soon as the host is connected.
    func scripts(_ built: Workspace, hosts: [String], binaryPaths: [String],
                          extraFiles: [RenderedFile]) -> [String: String] {
        let plan = built.plan
        var scripts: [String: String] = [:]
        for host in hosts {
            let members = plan.clusters.flatMap { $0.members.filter { $0.host == host } }
            let files = (plan.files + extraFiles).filter { $0.host == host }.map(\.path) + (members.isEmpty ? [] : binaryPaths)
            let directories = members.flatMap { [$0.paths.configDir, $0.paths.data, $0.paths.runDir, $0.paths.logDir] }
            let spaces = members.flatMap { [$0.paths.data, $0.paths.binary] }
            let reaches = members.flatMap { [$0.paths.data, $0.paths.logDir, $0.paths.configDir] }
            // A member to remove is asked whether it runs: one that does not leaves first.
            let leaving = plan.clusters.flatMap { $0.removals.compactMap(\.member).filter { $0.host == host } }
            scripts[host] = HostFacts.script(for: members + leaving, files: files, directories: directories,
                                             spaces: spaces, etcdReaches: reaches,
                                             measuringDisks: checkDisks ? members.map(\.paths.data).uniqued() : [])
        }
        return scripts
    }

    /// Every problem on every host at once; throws before anything was changed.
    func judge(_ built: Workspace, outputs: [String: String]) throws -> [String: HostFacts] {
        let plan = built.plan
        let hostNames = outputs.keys.sorted()
        let gathered = HostFacts.gathered(outputs, inventory: built.inventory)
        var problems: [String] = []
        let localArch = Self.machine()
        for host in hostNames {
            guard let facts = gathered[host] else { continue }
            if facts.architecture != localArch {
                problems.append("\(host): architecture \(facts.architecture) does not fit the member binary (\(localArch))")
            }
            if facts.supervisorChoice == .systemd, !facts.hasSystemd {
                problems.append("\(host): supervisor: systemd, but systemd is not running as PID 1 there (no /run/systemd/system); use supervisor: auto or process")
            }
            if facts.freeKilobytes < 200_000 {
                problems.append("\(host): only \(facts.freeKilobytes / 1024) MiB free on /")
            }
            let disk = DiskLatency.judge(host: host, facts.diskLatency)
            for line in disk.lines { progress.host(host, "disk", line) }
            problems += disk.problems
        }
        for cluster in plan.clusters {
            // A restored cluster's members carry the IDs its record holds, not the planned ones
            // (a changed token is then caught by refuseIgnoredChanges, before anything is written).
            let record = try built.state.clusterRecord(cluster.name)
            let recorded = record?.restoreToken != nil ? record?.members ?? [] : []
            let identityProblems = self.identityProblems(cluster, record: record, gathered: gathered)
            problems += identityProblems.map(\.problem)
            // A member of another state dir or incarnation is judged on that alone.
            let judged = Set(identityProblems.map(\.member))
            for member in cluster.members where !judged.contains(member.name) {
                guard let facts = gathered[member.host] else { continue }
                let mine = facts.members[cluster.name] ?? HostFacts.MemberFacts(hasData: false)
                let expected = recorded.first { $0.name == member.name }.map { "\(cluster.name) \(member.name) \($0.id)" } ?? member.marker
                // A newcomer's ID comes from etcd: a learner a cut run added and started has data
                // under that ID, which `join` checks against the member list.
                let ours = mine.marker?.hasPrefix("\(cluster.name) \(member.name) ") == true
                if mine.hasData, ours, member.join?.isNew == true, member.memberID == nil {
                    // checked by join
                } else if mine.hasData, let marker = mine.marker, marker != expected, ours {
                    problems.append("\(member.host): member \(member.name) of cluster '\(cluster.name)' was bootstrapped as \(marker.split(separator: " ").last ?? ""), the plan (or the cluster record) now makes it \(expected.split(separator: " ").last ?? "unknown"): its token, peer URLs or bootstrap changed, which etcd ignores once it has data. Rebuild it (`muster down --wipe-data`, its keys are lost) or reconfigure by hand (etcdctl member update/add/remove). muster's state for this inventory is \(stateDirectory): a copied inventory gets a state dir of its own unless --state names the original's")
                } else if mine.hasData, mine.marker != expected {
                    let whose = mine.marker.map { "member '\($0)'" } ?? "something muster did not start"
                    let replace = Self.othersRun(member, cluster, gathered) && record?.members.contains { $0.name == member.name } == true
                        ? "; or, its own data lost, `muster replace --cluster \(cluster.name) --member \(member.name)` joins it again with a fresh data dir" : ""
                    problems.append("\(member.host): data dir \(member.paths.data) holds data of \(whose), not of member \(expected); move it away (muster never deletes etcd data without --wipe-data on down)\(replace); muster's state for this inventory is \(stateDirectory) (--state names another)")
                } else if !mine.hasData, mine.runningPid == nil, member.join?.isNew != true,
                          record?.members.contains(where: { $0.name == member.name }) == true, Self.othersRun(member, cluster, gathered) {
                    problems.append("\(member.host): member \(member.name) of cluster '\(cluster.name)' has no data (\(member.paths.data)/member is missing) while the rest of the cluster runs: etcd would refuse to start it (it has already been bootstrapped into the cluster); `muster replace --cluster \(cluster.name) --member \(member.name)` joins it again through a learner with a fresh data dir")
                }
                if mine.runningPid == nil {
                    for port in member.listenPorts where facts.listeningPorts.contains(port) {
                        problems.append("\(member.host): port \(port) for cluster '\(cluster.name)' is already taken by another process")
                    }
                }
            }
            for member in cluster.members {
                guard let facts = gathered[member.host] else { continue }
                problems += Self.spaceProblems(member, facts) + Self.accessProblems(member, facts)
            }
            let space = DiskSpace.check(cluster, quota: DiskSpace.quotaBytes(of: cluster.name, inventory: built.inventory), facts: gathered)
            if !space.ok { progress.note("WARN cluster \(cluster.name): \(space.name): \(space.detail)") }
            if let dns = cluster.dns, gathered[dns.serverHost]?.hasDnsmasq != true {
                problems.append("\(dns.serverHost): dnsmasq is not installed (needed to serve DNS SRV for cluster '\(cluster.name)')")
            }
        }
        for host in hostNames { progress.host(host, "preflight", problems.contains { $0.hasPrefix("\(host):") } ? "FAILED" : "ok") }
        if !problems.isEmpty {
            throw DeployError(host: nil, step: "preflight", kind: .refused, "nothing was changed on any host:\n  " + problems.joined(separator: "\n  "))
        }
        return gathered
    }

    /// Whether another member of `cluster` runs now.
    static func othersRun(_ member: MemberPlan, _ cluster: ClusterPlan, _ gathered: [String: HostFacts]) -> Bool {
        cluster.members.contains { $0.name != member.name && gathered[$0.host]?.members[cluster.name]?.runningPid != nil }
    }

    /// Members that belong to another state dir or to an earlier incarnation of the cluster,
    /// each with its problem line (starting `HOST:`). Nothing may be written to them: a running member
    /// given certificates of another CA is rejected by its peers (and rejects them), and one
    /// given this state's config would be managed by two records.
    func identityProblems(_ cluster: ClusterPlan, record: ClusterRecord?,
                          gathered: [String: HostFacts]) -> [(member: String, problem: String)] {
        var problems: [(member: String, problem: String)] = []
        func refuse(_ member: MemberPlan, _ problem: String) { problems.append((member.name, problem)) }
        let usingState = "this run uses the state dir \(stateDirectory)"
        for member in cluster.members {
            guard let facts = gathered[member.host], let mine = facts.members[cluster.name],
                  mine.hasData || mine.runningPid != nil else { continue }
            let what = "\(member.host): member \(member.name) of cluster '\(cluster.name)'\(mine.runningPid != nil ? " runs with data" : " has data") that"
            if let theirs = mine.markerState, let identity, theirs.id != identity.id {
                let named = theirs.directory.isEmpty ? "another state dir (ID \(theirs.id))" : "the state dir \(theirs.directory)"
                refuse(member, "\(what) \(named) started, not this one: \(usingState) (a copied or moved inventory gets a state dir of its own); run with --state \(theirs.directory.isEmpty ? "DIR (the state dir that formed it)" : theirs.directory)")
                continue
            }
            // The CA files' sha256 as the facts hashed them: a file muster wrote holds the PEM
            // text of the state's CA exactly.
            if let authorities = authorities[cluster.name] {
                let files = [(member.paths.caCert, authorities.caSHA256), (member.paths.peerCACert, authorities.peerCASHA256)]
                if let (path, _) = files.first(where: { path, wanted in facts.files[path].map { $0.sha256 != wanted } ?? false }) {
                    let ours = authorities.madeNow ? "this state dir had none for the cluster (the one made in memory was not kept)"
                        : "not the one in \(authorities.pkiDirectory)"
                    // Markers naming this state dir: its CA was replaced since it started the member.
                    let wayOn = mine.markerState != nil
                        ? "this state dir started it, so its CA was replaced or removed since: put the CA files that signed the members' certificates back into \(authorities.pkiDirectory)"
                        : "\(usingState) (a copied or moved inventory gets a state dir of its own); run with --state naming the state dir that formed the cluster"
                    refuse(member, "\(member.host): member \(member.name) of cluster '\(cluster.name)' trusts another CA: \(path) there is \(ours), so certificates of this state would make its peers reject it; \(wayOn)")
                    continue
                }
            }
            if mine.hasData, let theirs = mine.markerIncarnation, let present = incarnations[cluster.name], theirs != present {
                refuse(member, "\(member.host): data dir \(member.paths.data) holds data of an earlier cluster '\(cluster.name)' (incarnation \(theirs.prefix(8)), this one's is \(present.prefix(8))): etcd would take it for this member's and wait for a cluster that is gone. Move it away on \(member.host) (e.g. mv \(member.paths.data) \(member.paths.data).old; muster never deletes etcd data without --wipe-data), then run again")
                continue
            }
            if record == nil, mine.runningPid != nil, mine.markerState == nil, authorities[cluster.name]?.madeNow != false {
                refuse(member, "\(what) this state has no record of: \(usingState), which never formed cluster '\(cluster.name)' (a copied or moved inventory gets a state dir of its own); run with --state naming the state dir that formed it")
            }
        }
        return problems
    }

    /// Room for etcd's data (a fresh member's WAL preallocates 64 MB) and for the binary.
    static let minimumDataKilobytes = 100 * 1024, minimumInstallKilobytes = 64 * 1024

    static func spaceProblems(_ member: MemberPlan, _ facts: HostFacts) -> [String] {
        var problems: [String] = []
        if let free = facts.freeKilobytesAt[member.paths.data], free < minimumDataKilobytes {
            problems.append("\(member.host): only \(free / 1024) MiB free for \(member.paths.data) (cluster '\(member.cluster)' needs \(minimumDataKilobytes / 1024) MiB for etcd's data)")
        }
        if let free = facts.freeKilobytesAt[member.paths.binary], free < minimumInstallKilobytes {
            problems.append("\(member.host): only \(free / 1024) MiB free for \(member.paths.binary) (the member binary needs \(minimumInstallKilobytes / 1024) MiB)")
        }
        return problems
    }

    /// A directory above the member's own that only its owner may enter keeps the etcd user out,
    /// and etcd would fail at start: say so now.
    static func accessProblems(_ member: MemberPlan, _ facts: HostFacts) -> [String] {
        [member.paths.data, member.paths.logDir, member.paths.configDir].flatMap { path in
            facts.directoryAccess.filter { parent, access in
                path.hasPrefix(parent + "/") && access.mode & 0o001 == 0 && access.owner != "etcd"
            }.map { parent, access in
                "\(member.host): directory \(parent) (mode \(String(access.mode, radix: 8)), owner \(access.owner)) keeps the etcd user out of \(path); allow it through (chmod o+x \(parent)) or point paths elsewhere"
            }
        }.uniqued()
    }

    /// This machine's architecture as `uname -m` prints it, without starting a process.
    static func machine() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
