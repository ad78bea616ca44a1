import Foundation
import Testing
import MusterBasics
import MusterEtcd
import MusterPlan
import MusterWorkspace
import MusterSandbox
@testable import MusterDeploy

/// Where root writes on a host, and what another user there (the etcd user above all) can make
/// of it: a parent directory they may write is refused before anything changes; a restore or a
/// replace never follows a link they put where muster used to write by a name they could guess.
@Suite struct RootWriteTests {
    /// Runs `command` on `host` as the etcd user.
    private func asEtcd(_ host: String, _ command: String) throws -> String {
        try DeploySandbox.exec(host, "setpriv --reuid=etcd --regid=etcd --init-groups sh -c \(Shell.quote(command))")
    }

    /// The etcd user as Debian's etcd package leaves it: a system user owning /var/lib/etcd.
    private func debianLayout(_ host: String) throws {
        _ = try DeploySandbox.exec(host, """
            id -u etcd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/etcd --shell /usr/sbin/nologin etcd
            mkdir -p /var/lib/etcd && chown etcd:etcd /var/lib/etcd
            """)
    }

    @Test func aParentOfARootWrittenPathThatAnotherUserCanWriteIsRefusedAtPreflight() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            for host in ["host1", "host2", "host3"] { try debianLayout(host) }
            _ = try DeploySandbox.exec("host1", "mkdir -p /etc/etcd && chown etcd /etc/etcd && chmod 0755 /etc/etcd")
            _ = try DeploySandbox.exec("host2", "mkdir -p /opt/muster && chmod 0777 /opt/muster")
            _ = try DeploySandbox.exec("host3", "mkdir -p /etc/systemd/system && chmod 0775 /etc/systemd/system")
            let listing = "ls -A /etc/etcd /opt/muster/bin 2>/dev/null; true"
            let before = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, listing) }
            var message = ""
            do { _ = try await DeploySandbox.up(builder) } catch { message = "\(error)" }
            #expect(message.contains("nothing was changed on any host"), "\(message)")
            #expect(message.contains("host1: directory /etc/etcd (owner etcd, mode 755) can be written by its owner etcd, and root writes /etc/etcd/main/"), "\(message)")
            #expect(message.contains("host2: directory /opt/muster (owner root, mode 777) can be written by every user, and root writes /opt/muster/bin/"), "\(message)")
            #expect(message.contains("host3: directory /etc/systemd/system (owner root, mode 775) can be written by its group"), "\(message)")
            #expect(message.contains("chown root /etc/etcd; chmod go-w /etc/etcd"), "\(message)")
            // The data dirs' parent, the etcd user's own as Debian leaves it, is no root-written path's.
            #expect(!message.contains("directory /var/lib/etcd "), "\(message)")
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, listing) } == before, "something was written")

            _ = try DeploySandbox.exec("host1", "chown root /etc/etcd")
            _ = try DeploySandbox.exec("host2", "chmod 0755 /opt/muster")
            _ = try DeploySandbox.exec("host3", "chmod 0755 /etc/systemd/system")
            let outcome = try await DeploySandbox.up(builder)
            #expect(outcome.reports.allSatisfy { $0.ok }, "\(outcome.reports.map { $0.table() })")
            try await DeploySandbox.down(builder, wipe: true)
        }
    }

    /// `replace` and `restore` write conf.yml, keys and the snapshot as root too: the same parent
    /// is refused there before anything changes, the members left running.
    @Test func replaceAndRestoreRefuseAWritableParentToo() async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static)
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let saved = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress()).run())
            _ = try DeploySandbox.exec("host3", "chmod 0777 /etc/etcd")
            let pids = try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") }
            let wanted = "host3: directory /etc/etcd (owner root, mode 777) can be written by every user"

            var message = ""
            let replace = Replace(builder: { var b = builder; b.cluster = "main"; return b }(), member: "host3",
                                  options: DeploySandbox.options, progress: Progress())
            do { _ = try await replace.run() } catch { message = "\(error)" }
            #expect(message.contains(wanted) && message.contains("nothing was changed on any host"), "\(message)")
            message = ""
            var restore = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(), snapshot: saved.snapshot.file)
            restore.force = true
            do { _ = try await restore.run() } catch { message = "\(error)" }
            #expect(message.contains(wanted), "\(message)")
            #expect(try ["host1", "host2", "host3"].map { try DeploySandbox.exec($0, "cat /run/etcd/main.pid") } == pids, "a member was stopped")

            _ = try DeploySandbox.exec("host3", "chmod 0755 /etc/etcd")
            try await DeploySandbox.down(builder, wipe: true)
            try? FileManager.default.removeItem(atPath: (saved.snapshot.file as NSString).deletingLastPathComponent)
        }
    }

    /// The etcd user owns the data dirs' parent (Debian's layout) and puts links where the restore
    /// uploaded its snapshot and where a replace moves the old data (a name made of the time): root
    /// writes through none of them, and both still do their work.
    /// On etcd 3.4.23 (etcdctl restores) and 3.5.16 (etcdutl).
    @Test(arguments: ["/usr/bin/etcd", DeploySandbox.etcd35])
    func restoreAndReplaceNeverWriteThroughALinkTheEtcdUserPlants(binary: String) async throws {
        try await onSandbox {
            let builder = try DeploySandbox.inventory(.static, binary: binary)
            for host in ["host1", "host2", "host3"] { try debianLayout(host) }
            let formed = try await DeploySandbox.up(builder)
            #expect(formed.reports.allSatisfy { $0.ok }, "\(formed.reports.map { $0.table() })")
            let client = EtcdClient(baseURL: "http://\(try DeploySandbox.host("host2").address):2379", timeout: 10)
            _ = try await client.put("/kept", "in the snapshot")
            let saved = try #require(try await SnapshotSave(builder: builder, options: DeploySandbox.options, progress: Progress()).run())
            _ = try await client.put("/later", "gone after the restore")

            // Where the restore used to upload the snapshot: a link to a directory of root's.
            _ = try DeploySandbox.exec("host1", "mkdir -p /etc/muster-victim && chmod 0755 /etc/muster-victim")
            _ = try asEtcd("host1", "ln -s /etc/muster-victim /var/lib/etcd/main.muster-restore-\(saved.snapshot.sha256.prefix(16)).db")
            var restore = Restore(builder: builder, options: DeploySandbox.options, progress: Progress(), snapshot: saved.snapshot.file)
            restore.force = true
            let restored = try #require(try await restore.run())
            #expect(restored.report.ok, "\(restored.report.table())")
            #expect(try DeploySandbox.exec("host1", "ls -A /etc/muster-victim") == "", "root wrote through the etcd user's link")
            #expect(try await client.get("/kept").kvs.count == 1)
            #expect(try await client.get("/later").kvs.isEmpty)
            // The snapshot waited where root alone may enter, and is gone once restored.
            #expect(try DeploySandbox.exec("host1", "stat -c '%U %a' /opt/muster/bin/.muster-restore; ls -A /opt/muster/bin/.muster-restore") == "root 700")
            #expect(try DeploySandbox.exec("host1", "ls -A /var/lib/etcd | grep -c muster-restoring; true") == "0", "a work dir was left")

            // host1 loses its data; the etcd user puts a link at every name the aside could have
            // had for the next ten minutes, were it made of the time alone.
            _ = try DeploySandbox.exec("host1", "p=$(cat /run/etcd/main.pid); kill $p; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; rm -rf /var/lib/etcd/main/member")
            let now = Date()
            let names = (-5..<600).map { ISO8601DateFormatter().string(from: now.addingTimeInterval(Double($0))).replacingOccurrences(of: ":", with: "") }
            _ = try asEtcd("host1", "for s in \(names.joined(separator: " ")); do ln -s /etc/muster-victim /var/lib/etcd/main.muster-replaced-$s; done")
            let replace = Replace(builder: { var b = builder; b.cluster = "main"; return b }(), member: "host1",
                                  options: DeploySandbox.options, progress: Progress())
            let report = try #require(try await replace.run())
            #expect(report.ok, "\(report.table())")
            #expect(try DeploySandbox.exec("host1", "ls -A /etc/muster-victim") == "", "root moved the data dir through the etcd user's link")
            #expect(try await client.get("/kept").kvs.count == 1)

            try await DeploySandbox.down(builder, wipe: true)
            _ = try DeploySandbox.exec("host1", "rm -rf /etc/muster-victim /var/lib/etcd/main.muster-*")
            try? FileManager.default.removeItem(atPath: (saved.snapshot.file as NSString).deletingLastPathComponent)
        }
    }
}
