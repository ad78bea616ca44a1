import Foundation
import Testing
import MusterBasics
import MusterWorkspace
import MusterSandbox

/// `muster snapshot schedule`: units systemd's own checker accepts, and the command they run,
/// run by hand, saves a snapshot and exports the state.
@Suite struct SnapshotScheduleTests {
    @Test func theScheduledCommandSavesASnapshotAndExportsTheState() async throws {
        try await onSandbox {
            let builder = try await DeploySandbox.formedTLSCluster(binary: DeploySandbox.etcd35).builder
            let inventory = builder.inventoryPath
            let work = (inventory as NSString).deletingLastPathComponent
            let key = work + "/operator.key"
            #expect(try LocalProcess.run(["/usr/bin/age-keygen", "-o", key], timeout: 30).status == 0)
            let recipient = try LocalProcess.run(["/usr/bin/age-keygen", "-y", key], timeout: 30).stdoutText
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let backups = work + "/backups", units = work + "/units"
            let arguments = ["snapshot", "schedule", inventory, "--every", "6h", "--out", backups, "--keep", "2",
                             "--with-state", "--recipient", recipient]

            let written = try LocalProcess.run([MusterCLI.binary] + arguments + ["--unit-dir", units], timeout: 60)
            #expect(written.status == 0 && written.stdoutText.contains("check out"), "\(written.stdoutText)\(written.stderrText)")
            let name = "muster-snapshot-inventory-main"
            let timer = try String(contentsOfFile: "\(units)/\(name).timer", encoding: .utf8)
            #expect(timer.contains("OnCalendar=0/6:00:00\n") && timer.contains("Persistent=true\n") && timer.contains("RandomizedDelaySec=300\n"), "\(timer)")
            // systemd's own checker, run again by the test on what was written.
            let verified = try LocalProcess.run(["/usr/bin/systemd-analyze", "verify", "\(units)/\(name).service", "\(units)/\(name).timer"], timeout: 60)
            #expect(!verified.stderrText.contains(name), "\(verified.stderrText)")

            let printed = try LocalProcess.run([MusterCLI.binary] + arguments + ["--print"], timeout: 60)
            #expect(printed.status == 0, "\(printed.stderrText)")
            #expect(!FileManager.default.fileExists(atPath: "/etc/systemd/system/\(name).timer"), "--print writes nothing")
            guard let cron = printed.stdoutText.split(separator: "\n").last(where: { $0.hasPrefix("0 */6 * * * ") }) else {
                Issue.record("no crontab line in \(printed.stdoutText)")
                return
            }
            // What cron would run: the line after its five time fields, in a shell.
            let command = cron.split(separator: " ", maxSplits: 5).last.map(String.init) ?? ""
            var environment = ProcessInfo.processInfo.environment
            environment["MUSTER_SANDBOX_ONLY"] = "1"
            environment["MUSTER_TEMPLATES"] = repositoryRoot + "/templates"
            for run in 1...3 {
                let ran = try LocalProcess.run(["/bin/sh", "-c", command], environment: environment, timeout: 120)
                #expect(ran.status == 0, "run \(run): \(ran.stdoutText)\(ran.stderrText)")
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: backups)
            #expect(files.filter { $0.hasPrefix("main-") && $0.hasSuffix(".db") }.count == 2, "--keep 2 after three runs: \(files)")
            #expect(files.contains("muster-state-inventory.age"), "\(files)")
            let listing = try LocalProcess.run(["/bin/sh", "-c", "age -d -i \(key) \(backups)/muster-state-inventory.age | tar -tf -"], timeout: 30)
            #expect(listing.stdoutText.contains("./pki/main/ca.key\n"), "\(listing.stdoutText)\(listing.stderrText)")
            // verify watches the schedule from the record: fresh now; stale once every recorded
            // snapshot and the schedule itself date from two days ago (as if the timer had stopped).
            let fresh = try MusterCLI.run(["verify", inventory, "--output", "json", "--sample", "100ms"])
            #expect(fresh.status == 0 && fresh.stdoutText.contains("snapshot-age") && fresh.stdoutText.contains("the schedule takes one every 6 h"), "\(fresh.stdoutText)")
            #expect(!fresh.stdoutText.contains("over twice the schedule"), "\(fresh.stdoutText)")
            let recordPath = try builder.build().state.directory + "/clusters/main.json"
            let aged = try LocalProcess.run(["/usr/bin/python3", "-c", """
                import json, sys
                path = sys.argv[1]
                record = json.load(open(path))
                record['snapshotSchedule']['since'] = '2000-01-01T00:00:00Z'
                for snapshot in record['snapshots']:
                    snapshot['takenAt'] = '2000-01-01T00:00:00Z'
                json.dump(record, open(path, 'w'))
                """, recordPath], timeout: 30)
            #expect(aged.status == 0, "\(aged.stderrText)")
            let stale = try MusterCLI.run(["verify", inventory, "--sample", "100ms"])
            #expect(stale.status == 0 && stale.stdoutText.contains("WARN") && stale.stdoutText.contains("over twice the schedule's 6 h")
                    && stale.stdoutText.contains("systemctl status \(name).service"), "a warning, exit 0: \(stale.stdoutText)")
            let strict = try MusterCLI.run(["verify", inventory, "--sample", "100ms", "--strict"])
            #expect(strict.status == 1, "--strict counts it: \(strict.stdoutText)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    @Test func anIntervalNeitherATimerNorCronCanKeepIsRefused() throws {
        let run = try LocalProcess.run([MusterCLI.binary, "snapshot", "schedule", "/nonexistent.yml", "--every", "7m", "--out", "/tmp/x"], timeout: 30)
        #expect(run.status == 2 && run.stderrText.contains("dividing 60"), "\(run.stderrText)")
    }
}
