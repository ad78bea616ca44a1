import Foundation
import MusterInventory
import MusterYAML
import Testing
@testable import MusterImport

/// How Ansible's INI and YAML inventories are read: ranges, quoting, variable precedence.
@Suite struct AnsibleReadingTests {
    let mark = Mark(line: 1, column: 1)

    @Test func rangesExpandAsAnsibleDoes() throws {
        #expect(try HostPattern.expand("etcd[1:3]", at: mark) == ["etcd1", "etcd2", "etcd3"])
        #expect(try HostPattern.expand("node[01:03].lan", at: mark) == ["node01.lan", "node02.lan", "node03.lan"])
        #expect(try HostPattern.expand("db-[a:c]", at: mark) == ["db-a", "db-b", "db-c"])
        #expect(try HostPattern.expand("h[0:6:3]", at: mark) == ["h0", "h3", "h6"])
        #expect(try HostPattern.expand("r[1:2]n[a:b]", at: mark) == ["r1na", "r1nb", "r2na", "r2nb"])
        #expect(try HostPattern.expand("[:2]x", at: mark) == ["0x", "1x", "2x"])
        #expect(throws: ImportProblem.self) { try HostPattern.expand("h[01:3]", at: mark) }
        #expect(throws: ImportProblem.self) { try HostPattern.expand("h[3:1]", at: mark) }
        #expect(throws: ImportProblem.self) { try HostPattern.expand("h[1:2", at: mark) }
        #expect(throws: ImportProblem.self) { try HostPattern.expand("h[0:99999999]", at: mark) }
    }

    @Test func portsAreSplitOffButIPv6StaysWhole() throws {
        #expect(try HostPattern.splitPort("node1:2222", at: mark) == ("node1", "2222"))
        #expect(try HostPattern.splitPort("etcd[1:3]:22", at: mark) == ("etcd[1:3]", "22"))
        #expect(try HostPattern.splitPort("2001:db8::1", at: mark) == ("2001:db8::1", nil))
        #expect(try HostPattern.splitPort("[2001:db8::1]:2200", at: mark) == ("2001:db8::1", "2200"))
        #expect(throws: ImportProblem.self) { try HostPattern.splitPort("node1:ssh", at: mark) }
    }

    @Test func hostLinesSplitLikeShlexWithComments() throws {
        let words = try ShellWords.split(Array(#"n1 a='x y' b="q\"r" c=d\ e # f=g"#.unicodeScalars), line: 4)
        #expect(words.map(\.text) == ["n1", "a=x y", #"b=q"r"#, "c=d e"])
        #expect(words.map(\.mark.column) == [1, 4, 12, 21])
        #expect(throws: ImportProblem.self) { try ShellWords.split(Array("n1 a='x".unicodeScalars), line: 1) }
    }

    /// all < parent group < child group < the host's own; a deeper group wins over a shallower.
    @Test func variablesFollowAnsiblesPrecedence() throws {
        let ini = """
        [etcd]
        e1 ansible_user=hostuser
        e2

        [etcd:children]
        deep

        [deep]
        e3

        [all:vars]
        ansible_user=alluser
        ansible_port=2200

        [etcd:vars]
        ansible_user=groupuser

        [deep:vars]
        ansible_user=deepuser
        """
        let inventory = try INIInventoryReader.read(ini)
        let variables = AnsibleVariables(inventory)
        #expect(inventory.hosts(of: "etcd") == ["e1", "e2", "e3"])
        #expect(variables.variables(of: "e1")["ansible_user"]?.text == "hostuser")
        #expect(variables.variables(of: "e2")["ansible_user"]?.text == "groupuser")
        #expect(variables.variables(of: "e3")["ansible_user"]?.text == "deepuser")
        #expect(variables.variables(of: "e3")["ansible_port"]?.text == "2200")
    }

    @Test func theFormatFollowsTheExtensionThenTheFirstLine() {
        #expect(AnsibleImport.format(of: "[etcd]\n", file: "x.yml") == .yaml)
        #expect(AnsibleImport.format(of: "# c\nall:\n  hosts:\n", file: "hosts") == .yaml)
        #expect(AnsibleImport.format(of: "---\nall: {}\n", file: "hosts") == .yaml)
        #expect(AnsibleImport.format(of: "; c\n[etcd]\nn1\n", file: "hosts") == .ini)
        #expect(AnsibleImport.format(of: "n1 ansible_host=10.0.0.1\n", file: "inventory") == .ini)
    }

    /// Whatever the import writes, muster's own loader takes.
    @Test func theOutputLoadsAsAMusterInventory() throws {
        let ini = "[etcd]\n10.0.0.[1:3] ansible_user=core ansible_port=2222 ansible_ssh_private_key_file='/keys/a key'\n"
        let text = try AnsibleImport.convert(Data(ini.utf8), file: "hosts")
        let inventory = try InventoryLoader.parse(text, file: "imported.yml")
        #expect(inventory.hosts.map(\.name) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(inventory.clusters.map(\.name) == ["etcd"])
        #expect(inventory.hosts.first?.ssh.identity == "/keys/a key")
        #expect(inventory.hosts.first?.ssh.port == 2222)
    }
}
