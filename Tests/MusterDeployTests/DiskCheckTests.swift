import Foundation
import Testing
import MusterBasics
import MusterDeploy
import MusterEtcd
import MusterPlan
import MusterSandbox
import MusterWorkspace
import MusterTestSupport

/// A real block device under a sandbox host's data dirs: an ext4 filesystem on a loop device
/// whose image lives in the controller's memory (/dev/shm), so that its speed is the kernel's
/// and not the CI machine's disk; `throttle` slows its writes with the kernel's block throttle
/// (cgroup v1 blkio `throttle.write_iops_device`), which every durable write then waits for.
///
/// This machine's kernel has no device-mapper (no `dm-delay` target: /proc/misc lists no
/// device-mapper and modules cannot be loaded), hence the throttle rather than a delay target.
struct SandboxDisk {
    let host: String
    let loop: String
    let device: String  // MAJOR:MINOR
    let image: String
    let mountPoint: String
    let node: String

    /// Mounts a fresh `megabytes` ext4 filesystem at `mountPoint` inside `host` only.
    static func mount(on host: String, at mountPoint: String = "/var/lib/etcd", megabytes: Int = 384) throws -> SandboxDisk {
        let image = "/dev/shm/muster-disk-\(UUID().uuidString).img"
        try LocalProcess.checked(["/usr/bin/truncate", "-s", "\(megabytes)M", image])
        let loop = try LocalProcess.checked(["/usr/sbin/losetup", "--find", "--show", image]).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let device = try String(contentsOfFile: "/sys/block/\((loop as NSString).lastPathComponent)/dev", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let disk = SandboxDisk(host: host, loop: loop, device: device, image: image, mountPoint: mountPoint,
                               node: "/dev/muster-\((loop as NSString).lastPathComponent)")
        do {
            try LocalProcess.checked(["/usr/sbin/mkfs.ext4", "-q", loop])
            let numbers = device.split(separator: ":")
            // The host's /dev is its own: the device gets a node there.
            _ = try DeploySandbox.exec(host, "mknod \(Shell.quote(disk.node)) b \(numbers[0]) \(numbers[1]) && mkdir -p \(Shell.quote(mountPoint)) && mount \(Shell.quote(disk.node)) \(Shell.quote(mountPoint)) && echo mounted")
            guard try DeploySandbox.exec(host, "stat -f -c %T \(Shell.quote(mountPoint))") == "ext2/ext3" else {
                throw SandboxError("\(loop) did not mount at \(mountPoint) on \(host)")
            }
        } catch {
            disk.remove()
            throw error
        }
        return disk
    }

    /// At most `iops` writes a second reach the device (0: no limit).
    func throttle(writesPerSecond iops: Int) throws {
        try Data("\(device) \(iops)\n".utf8).write(to: URL(fileURLWithPath: "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"))
    }

    /// Unmounted lazily and detached: a member a failed scenario left running there keeps both
    /// until the next scenario's wipe stops it (a busy loop device is freed when released).
    func remove() {
        try? throttle(writesPerSecond: 0)
        _ = try? DeploySandbox.exec(host, "umount -l \(Shell.quote(mountPoint)); rm -f \(Shell.quote(node))")
        _ = try? LocalProcess.run(["/usr/sbin/losetup", "-d", loop])
        try? FileManager.default.removeItem(atPath: image)
    }
}

extension LocalProcess {
    @discardableResult
    static func checked(_ arguments: [String]) throws -> ProcessResult {
        let result = try run(arguments, timeout: 60)
        guard result.status == 0 else { throw SandboxError("\(arguments.joined(separator: " ")): \(result.stderrText)") }
        return result
    }
}

/// The disk before day one: `up`'s preflight measures fdatasync on each new member's data dir's
/// filesystem (etcd 3.4.23 inventories; the refusal comes before any etcd starts).
@Suite(.serialized) struct DiskCheckTests {
    /// `muster up` with the disk check on (the harness's `MusterCLI.up` turns it off).
    private func up(_ builder: PlanBuilder, _ extra: [String] = []) throws -> ProcessResult {
        try MusterCLI.run(["up", builder.inventoryPath] + extra, diskCheck: true, timeout: 180)
    }

    @Test func aSlowDiskIsRefusedBeforeAnythingChanges() async throws {
        try await onSandbox {
            try DeploySandbox.wipeHosts()
            let builder = try DeploySandbox.inventory(.static)
            var disks: [SandboxDisk] = []
            defer { for disk in disks { disk.remove() } }
            for host in ["host1", "host2", "host3"] { disks.append(try SandboxDisk.mount(on: host)) }
            // Four writes a second on host2's: each durable write waits 250 ms or more, whatever the load.
            try disks[1].throttle(writesPerSecond: 4)

            let refused = try up(builder)
            #expect(refused.status == 1, "\(refused.stdoutText)\(refused.stderrText)")
            let said = refused.stderrText
            #expect(said.contains("nothing was changed on any host"), "\(said)")
            let refusal = try #require(said.split(separator: "\n").first { $0.contains("host2: the disk of /var/lib/etcd/main is too slow") }, "\(said)")
            #expect(refusal.contains("fdatasync p99 ") && refusal.contains("--skip-disk-check"), "\(refusal)")
            // The p99 it names is the throttle's, over the 100 ms line.
            let p99 = try #require(refusal.split(separator: "p99 ").dropFirst().first?.split(separator: " ").first.flatMap { Double($0) })
            #expect(p99 > 100, "\(refusal)")
            // Only host2 is named; the others measured and passed.
            #expect(!said.contains("host1: the disk") && !said.contains("host3: the disk"), "\(said)")
            for host in ["host1", "host3"] {
                #expect(said.split(separator: "\n").contains { $0.contains(host) && $0.contains("disk") && $0.contains("fdatasync p50") }, "\(said)")
            }
            // Nothing on any host: no config, no data, no probe file left behind.
            for host in ["host1", "host2", "host3"] {
                #expect(try DeploySandbox.exec(host, "ls -A /etc/etcd /var/lib/etcd 2>/dev/null | grep -v -e lost+found -e '^$' -e ':$' || true") == "", "\(host)")
            }

            // --skip-disk-check: preflight passes on the same slow disk without measuring it.
            let skipped = try up(builder, ["--skip-disk-check", "--dry-run"])
            #expect(skipped.status == 0 && skipped.stderrText.contains("dry run: preflight passed"), "\(skipped.stderrText)")
            #expect(!skipped.stderrText.contains("fdatasync"), "\(skipped.stderrText)")
        }
    }

    @Test func aFastDiskPassesWithItsFiguresAndARerunDoesNotMeasure() async throws {
        try await onSandbox {
            try DeploySandbox.wipeHosts()
            let builder = try DeploySandbox.inventory(.static)
            var disks: [SandboxDisk] = []
            defer { for disk in disks { disk.remove() } }
            for host in ["host1", "host2", "host3"] { disks.append(try SandboxDisk.mount(on: host)) }

            let first = try up(builder)
            #expect(first.status == 0, "\(first.stdoutText)\(first.stderrText)")
            let lines = first.stderrText.split(separator: "\n")
            for host in ["host1", "host2", "host3"] {
                let line = try #require(lines.first { $0.contains(" \(host) ") && $0.contains("disk") && $0.contains("fdatasync") }, "\(first.stderrText)")
                #expect(line.contains("p50 ") && line.contains("p99 ") && line.contains("in /var/lib/etcd, for /var/lib/etcd/main"), "\(line)")
                #expect(!line.contains("FAILED"), "\(line)")
            }
            #expect(try DeploySandbox.exec("host1", "ls -A /var/lib/etcd").split(separator: "\n").sorted() == ["lost+found", "main"])
            // 384 MB filesystems, under etcd's default 2 GiB quota: up warns, and so does verify.
            let short = try #require(lines.first { $0.contains("WARN cluster main: disk-free: ") }, "\(first.stderrText)")
            for host in ["host1", "host2", "host3"] { #expect(short.contains("\(host) on \(host) has "), "\(short)") }
            let verified = try #require(try await Verification.run(workspace: try builder.build(), options: DeploySandbox.options, viaSSH: true,
                                                                   sample: .milliseconds(300), progress: Progress(quiet: true)).first)
            let space = try #require(verified.check(named: "disk-free"), "\(verified.table())")
            #expect(space.warned && space.detail.contains("/var/lib/etcd/main") && space.detail.contains("2.1 GB"), "\(space.detail)")
            #expect(verified.exitCode == 0, "\(verified.table())")

            // The members hold data now: a re-run measures nothing.
            let again = try up(builder)
            #expect(again.status == 0, "\(again.stdoutText)\(again.stderrText)")
            #expect(!again.stderrText.contains("fdatasync"), "\(again.stderrText)")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }
}
