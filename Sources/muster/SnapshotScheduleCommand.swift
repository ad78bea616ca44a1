import ArgumentParser
import Foundation
import MusterBasics
import MusterInventory
import MusterWorkspace

/// `muster snapshot schedule`: a systemd service and timer on the controller that run this muster's
/// `snapshot save` (and, with `--with-state`, `state export`) on a schedule.
struct SnapshotScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Write a systemd service and timer that take the cluster's snapshot on a schedule.",
        discussion: "The units run the muster binary that wrote them, with absolute paths; they are checked with systemd-analyze verify where it exists, then written to --unit-dir. A failed run exits non-zero: systemctl shows the unit failed and the journal has muster's message. --print writes nothing and shows the units and the equivalent crontab line. Contacts no host.")

    @Argument(help: "The inventory file (YAML).")
    var inventory: String

    @Option(help: "The cluster (may be left out when the inventory has one).", completion: InventoryCompletion.clusters)
    var cluster: String?

    @Option(help: "Muster's state directory for this inventory (default: .muster/NAME beside it).")
    var state: String?

    @Option(help: "How often: Nm (N dividing 60), Nh (N dividing 24), 1d or 1w.")
    var every: String

    @Option(help: "Where each snapshot goes (as snapshot save's --out).")
    var out: String

    @Option(help: "As snapshot save's --keep.") var keep: Int?
    @Option(help: "As snapshot save's --keep-last.") var keepLast: Int?
    @Option(help: "As snapshot save's --keep-hourly.") var keepHourly: Int?
    @Option(help: "As snapshot save's --keep-daily.") var keepDaily: Int?
    @Option(help: "As snapshot save's --keep-weekly.") var keepWeekly: Int?
    @Option(help: "As snapshot save's --keep-monthly.") var keepMonthly: Int?

    @Flag(help: "Also export the state dir beside each snapshot (muster state export, to --recipient).")
    var withState = false

    @Option(name: .customLong("recipient"), help: "An age recipient for --with-state; repeat for several.")
    var recipients: [String] = []

    @Option(help: "Where to write the units.")
    var unitDir = "/etc/systemd/system"

    @Flag(help: "Write nothing: print the units and the equivalent crontab line.")
    var print = false

    func run() async throws {
        try await reportingErrors {
            guard let interval = ScheduleUnits.Interval(every) else {
                throw MusterError(.usage, "--every \(String(reflecting: every)): say Nm with N dividing 60 (15m), Nh with N dividing 24 (6h), 1d or 1w, which a timer and a crontab can both keep exactly")
            }
            if withState && recipients.isEmpty {
                throw MusterError(.usage, "--with-state: name the age recipients of the export with --recipient")
            }
            let inventoryPath = URL(fileURLWithPath: inventory).standardizedFileURL.path
            let loaded = try InventoryLoader.load(path: inventoryPath)
            guard let clusterName = cluster ?? (loaded.clusters.count == 1 ? loaded.clusters.first?.name : nil),
                  loaded.clusters.contains(where: { $0.name == clusterName }) else {
                throw MusterError(.usage, "\(inventory) has the clusters \(loaded.clusters.map(\.name).joined(separator: ", ")): name one with --cluster NAME")
            }
            let units = ScheduleUnits(name: ScheduleUnits.unitName(inventory: inventoryPath, cluster: clusterName),
                                      description: "muster snapshot of etcd cluster \(clusterName) (\(inventoryPath))",
                                      commands: try commands(inventory: inventoryPath, cluster: clusterName),
                                      interval: interval, home: FileManager.default.homeDirectoryForCurrentUser.path)
            if print {
                Swift.print("# \(unitDir)/\(units.name).service\n" + units.service)
                Swift.print("# \(unitDir)/\(units.name).timer\n" + units.timer)
                Swift.print("# or, without systemd, a crontab line:\n" + units.crontabLine)
                return
            }
            try write(units)
            try record(units, cluster: clusterName, inventory: inventoryPath, interval: interval)
        }
    }

    /// The record keeps the schedule: `verify` names a cluster whose newest snapshot is older
    /// than twice the interval.
    private func record(_ units: ScheduleUnits, cluster: String, inventory: String, interval: ScheduleUnits.Interval) throws {
        let directory = state ?? LocalState.defaultDirectory(forInventory: inventory)
        let schedule = ClusterRecord.SnapshotSchedule(everySeconds: interval.seconds, out: out, unit: units.name, since: Date())
        let recorded = FileManager.default.fileExists(atPath: directory)
            ? try LocalState(directory: directory, create: false).records.update(cluster) { $0?.snapshotSchedule = schedule } : nil
        if recorded == nil {
            Swift.print("note: cluster \(cluster) has no record in \(directory) yet (muster records a cluster at its first verified `up`): verify cannot watch this schedule until you run this again after it")
        }
    }

    private func commands(inventory: String, cluster: String) throws -> [[String]] {
        let muster = Self.executable()
        let absolute = { (path: String) in path.hasPrefix("s3://") ? path : URL(fileURLWithPath: path).standardizedFileURL.path }
        var save = [muster, "snapshot", "save", inventory, "--cluster", cluster, "--out", absolute(out)]
        if let state { save += ["--state", absolute(state)] }
        for (flag, value) in [("--keep", keep), ("--keep-last", keepLast), ("--keep-hourly", keepHourly),
                              ("--keep-daily", keepDaily), ("--keep-weekly", keepWeekly), ("--keep-monthly", keepMonthly)] {
            if let value { save += [flag, String(value)] }
        }
        var commands = [save]
        if withState {
            let name = "muster-state-" + URL(fileURLWithPath: inventory).deletingPathExtension().lastPathComponent + ".age"
            let beside = out.hasPrefix("s3://") ? (out.hasSuffix("/") ? out : out + "/") + name : absolute(out) + "/" + name
            var export = [muster, "state", "export", inventory, "--out", beside]
            if let state { export += ["--state", absolute(state)] }
            for recipient in recipients { export += ["--recipient", recipient] }
            commands.append(export)
        }
        return commands
    }

    /// Checked in a directory of their own, then written beside the other units.
    private func write(_ units: ScheduleUnits) throws {
        let manager = FileManager.default
        let staging = manager.temporaryDirectory.appendingPathComponent("muster-units-\(UUID().uuidString)").path
        try manager.createDirectory(atPath: staging, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? manager.removeItem(atPath: staging) }
        let files = [(units.name + ".service", units.service), (units.name + ".timer", units.timer)]
        for (file, text) in files { try AtomicFile.write(Data(text.utf8), to: staging + "/" + file, mode: 0o644) }
        let analyze = "/usr/bin/systemd-analyze"
        if manager.isExecutableFile(atPath: analyze) {
            let result = try LocalProcess.run([analyze, "verify"] + files.map { staging + "/" + $0.0 }, timeout: 60)
            let complaints = result.stderrText.split(separator: "\n").filter { $0.contains(units.name) }
            guard result.status == 0 || complaints.isEmpty else {
                throw MusterError(.refused, "systemd-analyze verify refused the units (nothing written to \(unitDir)):\n" + complaints.joined(separator: "\n"))
            }
            Swift.print("systemd-analyze verify: the units check out")
        } else {
            Swift.print("systemd-analyze is not installed: the units were not checked")
        }
        try manager.createDirectory(atPath: unitDir, withIntermediateDirectories: true)
        for (file, text) in files { try AtomicFile.write(Data(text.utf8), to: unitDir + "/" + file, mode: 0o644) }
        Swift.print("wrote \(unitDir)/\(units.name).service and .timer; start them with:")
        Swift.print("  systemctl daemon-reload && systemctl enable --now \(units.name).timer")
        Swift.print("a failed run shows in `systemctl status \(units.name).service` and `journalctl -u \(units.name).service`")
    }

    static func executable() -> String {
        TemplateLoader.runningExecutable() ?? CommandLine.arguments[0]
    }
}
