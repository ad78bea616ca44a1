import Foundation
import MusterBasics
#if canImport(Glibc)
import Glibc
#endif

/// Builds a host's overlay upper layer before its first mount, and the script that turns a fresh
/// set of namespaces into that host.
enum HostRoot {
    /// Controller paths a fresh host must not have: they are whited out in every host's overlay
    /// (a 0/0 character device in the upper layer), so a step that forgot to ship the member
    /// binary fails here as it would on a real machine. The state dir is added per sandbox.
    static let masked = [
        "/usr/bin/etcd", "/usr/bin/etcdctl", "/usr/bin/etcdutl", "/var/lib/etcd", "/etc/etcd",
        "/etc/default/etcd", "/opt/swift", "/opt/swift-packages", "/usr/local/bin/muster",
        "/work", "/var/lib/muster",
        "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub",
        "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ecdsa_key.pub",
        "/etc/ssh/sshd_config.d",
    ]

    static func prepare(host: SandboxHost, state: SandboxState, clientPublicKey: String) throws {
        let fm = FileManager.default
        for dir in [host.upperDir, host.workDir, host.mergedDir] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        var paths: [String] = []
        for path in (masked + [state.stateDir]).sorted()
        where !paths.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) {
            paths.append(path)
        }
        for path in paths { try whiteout(path, in: host.upperDir) }
        let resolver = state.hosts.last?.address ?? state.gateway
        try write("/etc/hostname", "\(host.name)\n", in: host)
        try write("/etc/hosts", """
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            \(host.address)\t\(host.fqdn) \(host.name)

            """, in: host)
        // The last host is the sandbox's DNS server (the `dns` inventory runs dnsmasq there).
        try write("/etc/resolv.conf", """
            # muster sandbox: \(state.hosts.last?.name ?? "") serves DNS when muster runs dnsmasq there
            search \(state.domain)
            nameserver \(resolver)
            options timeout:1 attempts:2

            """, in: host)
        try write("/etc/ssh/sshd_config", """
            # muster sandbox host \(host.name)
            Port \(host.sshPort)
            ListenAddress \(host.address)
            HostKey /etc/ssh/ssh_host_ed25519_key
            PermitRootLogin prohibit-password
            PubkeyAuthentication yes
            AuthorizedKeysFile .ssh/authorized_keys
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            UseDNS no
            PrintMotd no
            PidFile none
            MaxStartups 64:30:128
            MaxSessions 64
            # DEBUG1 logs every channel a client opens: the benchmark counts them from here.
            LogLevel DEBUG1
            AcceptEnv LANG LC_*
            Subsystem sftp /usr/lib/openssh/sftp-server

            """, in: host)
        let keyPath = host.upperDir + "/etc/ssh/ssh_host_ed25519_key"
        try LocalProcess.check(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                                "-C", "root@\(host.name)", "-f", keyPath])
        // The controller's own keys in /root/.ssh never show inside a host.
        let sshDir = host.upperDir + "/root/.ssh"
        try fm.createDirectory(atPath: sshDir, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        try fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: host.upperDir + "/root")
        for entry in (try? fm.contentsOfDirectory(atPath: "/root/.ssh")) ?? [] where entry != "authorized_keys" {
            try whiteout("/root/.ssh/" + entry, in: host.upperDir)
        }
        try write("/root/.ssh/authorized_keys", clientPublicKey, in: host, mode: 0o600)
        // A fresh machine's root shell files, not the controller's: bash sources ~/.bashrc for
        // every command sshd runs, and a developer's (pyenv init here) costs ~300 ms per command.
        for name in [".bashrc", ".profile"] {
            let skeleton = (try? String(contentsOfFile: "/etc/skel/\(name)", encoding: .utf8)) ?? ""
            try write("/root/\(name)", skeleton, in: host)
        }
        if host.initSystem == .systemd { try SystemdHost.prepare(host: host) }
    }

    /// The host's public host key line (`ssh-ed25519 AAAA...`).
    static func hostKey(of host: SandboxHost) throws -> String {
        let text = try String(contentsOfFile: host.upperDir + "/etc/ssh/ssh_host_ed25519_key.pub",
                              encoding: .utf8)
        return text.split(separator: " ").prefix(2).joined(separator: " ")
    }

    static func write(_ path: String, _ text: String, in host: SandboxHost,
                              mode: Int = 0o644) throws {
        let full = host.upperDir + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: full)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: full)
    }

    static func whiteout(_ path: String, in upper: String) throws {
        let full = upper + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        guard mknod(full, S_IFCHR | 0o000, 0) == 0 || errno == EEXIST else {
            throw SandboxError("cannot create the whiteout \(full): \(String(cString: strerror(errno)))")
        }
    }

    /// Runs as pid 1 of a host without init, in its new pid namespace, inside its netns and a private mount and
    /// UTS namespace: mounts the overlay root with fresh /proc, /sys, /dev, /run and /tmp,
    /// pivots into it, drops the controller's root and becomes the host's sshd.
    static func launchScript(host: SandboxHost) -> String {
        let q = Shell.quote
        let m = q(host.mergedDir)
        return """
            set -eu
            hostname \(q(host.name))
            mount -t overlay \(q("muster-" + host.name)) -o \(q("lowerdir=/,upperdir=\(host.upperDir),workdir=\(host.workDir)")) \(m)
            mount -t proc proc \(m)/proc
            mount -t sysfs sysfs \(m)/sys
            mount -t tmpfs -o mode=0755,size=16m,nosuid devtmp \(m)/dev
            mknod -m 0666 \(m)/dev/null c 1 3
            mknod -m 0666 \(m)/dev/zero c 1 5
            mknod -m 0666 \(m)/dev/full c 1 7
            mknod -m 0666 \(m)/dev/random c 1 8
            mknod -m 0666 \(m)/dev/urandom c 1 9
            mknod -m 0666 \(m)/dev/tty c 5 0
            mkdir \(m)/dev/pts \(m)/dev/shm
            mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts \(m)/dev/pts
            ln -s pts/ptmx \(m)/dev/ptmx
            ln -s /proc/self/fd \(m)/dev/fd
            ln -s /proc/self/fd/0 \(m)/dev/stdin
            ln -s /proc/self/fd/1 \(m)/dev/stdout
            ln -s /proc/self/fd/2 \(m)/dev/stderr
            mount -t tmpfs -o mode=1777,nosuid,nodev shm \(m)/dev/shm
            mount -t tmpfs -o mode=0755,nosuid,nodev run \(m)/run
            mount -t tmpfs -o mode=1777,nosuid,nodev tmp \(m)/tmp
            mkdir -p \(m)/run/sshd \(m)/run/lock
            cd \(m)
            mkdir -p .muster-oldroot
            pivot_root . .muster-oldroot
            cd /
            umount -l /.muster-oldroot
            rmdir /.muster-oldroot
            exec /usr/sbin/sshd -D -E /var/log/muster-sshd.log -f /etc/ssh/sshd_config
            """
    }
}
