import Foundation
import MusterTestSupport
import Testing

/// Every string of an inventory that reaches a host (a command, a file, a unit, a config line)
/// with shell metacharacters or a control character appended: `muster render` refuses each
/// with exit 2 at the value's line and column. The one free-text field that reaches a host
/// (etcd option values) is shown quoted in what is rendered instead, and controller-side paths
/// are shown never to pass through a shell.
@Suite struct ShellWordTests {
    /// An inventory with every field that reaches a host; `{field}` is replaced by its value.
    /// It renders cleanly with the defaults below (see `theTemplateRendersAsItIs`).
    static let template = """
        member:
          version: {version}
        ssh:
          user: {user}
        hosts:
          {host}:
            address: {address}
            fqdn: {fqdn}
        dns:
          server: {server}
          domain: {domain}
        paths:
          install: {install}
          config: {config}
          data: {data}
          run: {run}
          log: {log}
          dnsmasq: {dnsmasq}
          systemd: {systemd}
        clusters:
          {cluster}:
            members:
              - {member}
            token: {token}
            client_listen: {listen}
            tls: false
            etcd:
              {etcdkey}: 100
          disco:
            members: [a]
            client_port: 3379
            peer_port: 3380
            tls: false
            bootstrap:
              discovery:
                url: {url}
                size: 1
                proxy: {proxy}
          svc:
            members: [a]
            client_port: 4379
            peer_port: 4380
            tls: false
            bootstrap:
              discovery:
                service: {service}
                size: 1
          seeded:
            members: [a]
            client_port: 5379
            peer_port: 5380
            tls: false
            bootstrap:
              discovery:
                cluster: {backend}
                size: 1
          srv:
            members: [a]
            client_port: 6379
            peer_port: 6380
            tls: true
            bootstrap:
              dns:
                domain: {srvdomain}
                service_name: {srvname}

        """

    /// A field, its good value, and where a refusal of it may point: the value itself, or for a
    /// reference to a host or cluster, the entry that makes the reference.
    struct Field: Sendable {
        var placeholder: String
        var value: String
        var marks: [(line: Int, column: Int)]
    }

    static let fields: [Field] = [
        Field(placeholder: "version", value: "3.4.23", marks: [(2, 12)]),
        Field(placeholder: "user", value: "root", marks: [(4, 9)]),
        Field(placeholder: "host", value: "a", marks: [(6, 3)]),
        Field(placeholder: "address", value: "10.0.0.1", marks: [(7, 14)]),
        Field(placeholder: "fqdn", value: "a.example.test", marks: [(8, 11)]),
        Field(placeholder: "server", value: "a", marks: [(10, 11)]),
        Field(placeholder: "domain", value: "example.test", marks: [(11, 11)]),
        Field(placeholder: "install", value: "/opt/muster/bin", marks: [(13, 12)]),
        Field(placeholder: "config", value: "/etc/etcd", marks: [(14, 11)]),
        Field(placeholder: "data", value: "/var/lib/etcd", marks: [(15, 9)]),
        Field(placeholder: "run", value: "/run/etcd", marks: [(16, 8)]),
        Field(placeholder: "log", value: "/var/log/etcd", marks: [(17, 8)]),
        Field(placeholder: "dnsmasq", value: "/etc/dnsmasq.d", marks: [(18, 12)]),
        Field(placeholder: "systemd", value: "/etc/systemd/system", marks: [(19, 12)]),
        Field(placeholder: "cluster", value: "main", marks: [(21, 3)]),
        // An unknown host is reported at the cluster that names it.
        Field(placeholder: "member", value: "a", marks: [(23, 9), (21, 3)]),
        Field(placeholder: "token", value: "tok-1", marks: [(24, 12)]),
        Field(placeholder: "listen", value: "address", marks: [(25, 20)]),
        Field(placeholder: "etcdkey", value: "snapshot-count", marks: [(28, 7)]),
        Field(placeholder: "url", value: "http://10.0.0.9:2379", marks: [(36, 14)]),
        Field(placeholder: "proxy", value: "http://10.0.0.9:8080", marks: [(38, 16)]),
        Field(placeholder: "service", value: "https://discovery.example.test", marks: [(46, 18)]),
        // An unknown backend is reported at the bootstrap that names it.
        Field(placeholder: "backend", value: "main", marks: [(55, 18), (54, 7)]),
        Field(placeholder: "srvdomain", value: "example.test", marks: [(64, 17)]),
        Field(placeholder: "srvname", value: "etcd", marks: [(65, 23)]),
    ]

    /// What gets appended to a field's good value; `PWNED` becomes a path in the test's directory.
    static let payloads = ["$(touch PWNED)", "`touch PWNED`", ";touch PWNED", "'", " x", "\n", "\n--x", "\0", "\u{1B}[2J"]

    /// `text` as a YAML double-quoted scalar.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\0": result += "\\0"
            case "\u{1B}": result += "\\e"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    static func inventory(replacing placeholder: String? = nil, with value: String = "") -> String {
        var text = template
        for field in fields {
            text = text.replacingOccurrences(of: "{\(field.placeholder)}",
                                             with: field.placeholder == placeholder ? quoted(value) : field.value)
        }
        return text
    }

    @Test func theTemplateRendersAsItIs() throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-shellwords")
        let path = directory.path + "/inventory.yml"
        try Data(Self.inventory().utf8).write(to: URL(fileURLWithPath: path))
        let run = try binary.run(["render", path, "--out", directory.path + "/out", "--state", directory.path + "/state"])
        #expect(run.status == 0, "\(run)")
    }

    @Test(arguments: fields.map(\.placeholder))
    func aShellWordOrAControlCharacterIsRefused(_ placeholder: String) throws {
        let field = try #require(Self.fields.first { $0.placeholder == placeholder })
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-shellwords")
        let path = directory.path + "/inventory.yml"
        for payload in Self.payloads {
            let value = field.value + payload.replacingOccurrences(of: "PWNED", with: directory.path + "/PWNED")
            try Data(Self.inventory(replacing: placeholder, with: value).utf8).write(to: URL(fileURLWithPath: path))
            let run = try binary.run(["render", path, "--out", directory.path + "/out", "--state", directory.path + "/state"],
                                     in: directory.path)
            let shown = "\(placeholder) + \(payload.debugDescription)"
            #expect(run.status == 2, "\(shown): \(run)")
            let pointed = field.marks.contains { run.stderrText.hasPrefix("\(path):\($0.line):\($0.column): error: ") }
            #expect(pointed, "\(shown) not refused at \(field.marks): \(run)")
            #expect(!run.stderrText.unicodeScalars.contains { $0.properties.generalCategory == .control && $0 != "\n" },
                    "\(shown): a control character reached the terminal")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/PWNED"))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/out"))
    }

    /// etcd option values are free text: they must arrive in conf.yml as YAML that reads back
    /// as the same string (the apply script then quotes the whole file for the shell).
    @Test func anEtcdOptionValueIsQuotedInConfYml() throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-shellwords")
        let path = directory.path + "/inventory.yml"
        let value = "$(touch PWNED); `id`; it's #1"
        let text = "member: { version: 3.4.23 }\nhosts:\n  a: { address: 10.0.0.1 }\n"
            + "clusters:\n  main:\n    members: [a]\n    tls: false\n    etcd:\n      cors: \(Self.quoted(value))\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let run = try binary.run(["render", path, "--out", directory.path + "/out", "--state", directory.path + "/state"],
                                 in: directory.path)
        #expect(run.status == 0, "\(run)")
        let conf = try String(contentsOfFile: directory.path + "/out/a/etc/etcd/main/conf.yml", encoding: .utf8)
        #expect(conf.contains("\ncors: '$(touch PWNED); `id`; it''s #1'\n"), "conf.yml: \(conf)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/PWNED"))
    }

    /// `member.binary` is a file on the controller, read (never run by `render`): a name full of
    /// shell words is just a name.
    @Test func theMemberBinaryPathNeverPassesThroughAShell() throws {
        let binary = try MusterBinary()
        let directory = try TemporaryDirectory(prefix: "muster-shellwords")
        let etcd = directory.path + "/$(touch PWNED);`touch PWNED` 'etcd'"
        try FileManager.default.createSymbolicLink(atPath: etcd, withDestinationPath: "/usr/bin/etcd")
        let path = directory.path + "/inventory.yml"
        let text = "member: { binary: \(Self.quoted(etcd)) }\nhosts:\n  a: { address: 10.0.0.1 }\n"
            + "clusters:\n  main: { members: [a], tls: false }\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let run = try binary.run(["render", path, "--out", directory.path + "/out", "--state", directory.path + "/state"],
                                 in: directory.path)
        #expect(run.status == 0, "\(run)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/PWNED"))
    }
}
