import Testing
@testable import MusterInventory

/// Each rule of Names.swift with a value it takes, and the same value spoilt: by a line break at
/// the end (ICU's `$` matched before one), by NUL, by a shell word.
@Suite struct NamesTests {
    struct Rule: CustomTestStringConvertible, Sendable {
        var name: String
        var check: @Sendable (String) -> Bool
        var good: String
        var bad: [String]
        var testDescription: String { name }
    }

    /// Spoilt forms of every good value, for every rule.
    static let spoilers: [@Sendable (String) -> String] = [
        { $0 + "\n" }, { $0 + "\r\n" }, { $0 + "\u{2028}" }, { $0 + "\u{85}" }, { "\n" + $0 },
        { $0 + "\0" }, { $0 + "\0;reboot" }, { $0 + "\t" }, { $0 + "\u{1B}" }, { $0 + "\u{7F}" },
        { $0 + ";reboot" }, { $0 + "$(reboot)" }, { $0 + "`reboot`" }, { $0 + "'" }, { $0 + " x" },
    ]

    static let rules: [Rule] = [
        Rule(name: "host name", check: Names.isValidHostName, good: "etcd-1.dc_2",
             bad: ["", "-a", String(repeating: "a", count: 64), "a/b"]),
        Rule(name: "cluster name", check: Names.isValidClusterName, good: "main-2",
             bad: ["", "Main", "a_b", "a.b", String(repeating: "a", count: 41)]),
        Rule(name: "user", check: Names.isValidUser, good: "etcd_admin-1",
             bad: ["", "Root", "1root", String(repeating: "a", count: 33)]),
        Rule(name: "token", check: Names.isToken, good: "tok-1.a_b",
             bad: ["", "-tok", "a b", String(repeating: "a", count: 129)]),
        Rule(name: "version", check: Names.isVersion, good: "3.4.23", bad: ["3.4", "v3.4.23", "3.4.23-rc1"]),
        Rule(name: "domain", check: Names.isDomainName, good: "etcd.example.test",
             bad: ["", "a..b", "-a.test", "a-.test", "a_b.test", String(repeating: "a.", count: 127) + "a"]),
        Rule(name: "path", check: Names.isSafeAbsolutePath, good: "/var/lib/etcd-1",
             bad: ["", "/", "var/lib", "/var/../etc", "/var//lib", "/var/lib/"]),
        Rule(name: "URL", check: Names.isHTTPURL, good: "https://10.0.0.9:2379/v2/keys",
             bad: ["ftp://x", "http://", "http://x?a=b", "http://x/\"y\""]),
        Rule(name: "address", check: Names.isIPAddress, good: "fd00::1",
             bad: ["", "10.0.0", "etcd1", "10.0.0.1/24"]),
    ]

    @Test(arguments: rules)
    func takesTheGoodValue(_ rule: Rule) {
        #expect(rule.check(rule.good))
    }

    @Test(arguments: rules)
    func refusesBadShapes(_ rule: Rule) {
        for value in rule.bad {
            #expect(!rule.check(value), "\(rule.name) took \(value.debugDescription)")
        }
    }

    @Test(arguments: rules)
    func refusesTheGoodValueSpoilt(_ rule: Rule) {
        for spoil in Self.spoilers {
            let value = spoil(rule.good)
            #expect(!rule.check(value), "\(rule.name) took \(value.debugDescription)")
        }
    }

    @Test func everyControlCharacterIsOne() {
        let controls = (0x00...0x1F).map { Unicode.Scalar($0)! } + [Unicode.Scalar(0x7F)!]
            + (0x80...0x9F).map { Unicode.Scalar($0)! } + [Unicode.Scalar(0x2028)!, Unicode.Scalar(0x2029)!]
        for scalar in controls {
            #expect(Names.hasControlCharacter("a" + String(Character(scalar)) + "b"), "U+\(String(scalar.value, radix: 16))")
        }
        #expect(!Names.hasControlCharacter("plain ascii ~ and ünïcödé"))
    }
}
