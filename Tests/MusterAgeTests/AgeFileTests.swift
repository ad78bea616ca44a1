import Foundation
import Testing
@testable import MusterAge

/// muster's age files against the `age` command (Debian's age 1.1): each opens what the other
/// sealed, and what was changed or cut is refused.
@Suite struct AgeFileTests {
    static let age = "/usr/bin/age"
    static let keygen = "/usr/bin/age-keygen"

    private func run(_ tool: String, _ arguments: [String], input: Data = Data()) throws -> (status: Int32, stdout: Data, stderr: String) {
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw AgeError("\(tool) is missing: scripts/setup.sh installs Debian's age package")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let writer = Thread { stdin.fileHandleForWriting.write(input); try? stdin.fileHandleForWriting.close() }
        writer.start()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, out, String(decoding: err, as: UTF8.self))
    }

    /// An identity file made by age-keygen, and its recipient as age-keygen -y says.
    private func keyPair() throws -> (file: String, identity: AgeIdentity, recipient: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-age-\(UUID().uuidString).txt").path
        let made = try run(Self.keygen, ["-o", file])
        #expect(made.status == 0, "\(made.stderr)")
        let recipient = String(decoding: try run(Self.keygen, ["-y", file]).stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let identities = try AgeIdentity.parseFile(try String(contentsOfFile: file, encoding: .utf8), file: file)
        return (file, identities[0], recipient)
    }

    private func payload(_ count: Int) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
    }

    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 200_000])
    func ageOpensWhatMusterSealed(size: Int) throws {
        let key = try keyPair()
        defer { try? FileManager.default.removeItem(atPath: key.file) }
        #expect(try key.identity.recipient.text == key.recipient, "the recipient derived as age-keygen -y derives it")
        let plaintext = payload(size)
        let sealed = try AgeFile.encrypt(plaintext, to: [try AgeRecipient(key.recipient)])
        let opened = try run(Self.age, ["-d", "-i", key.file], input: sealed)
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout == plaintext)
    }

    @Test(arguments: [0, 65_536, 200_000])
    func musterOpensWhatAgeSealed(size: Int) throws {
        let key = try keyPair()
        defer { try? FileManager.default.removeItem(atPath: key.file) }
        let plaintext = payload(size)
        let sealed = try run(Self.age, ["-r", key.recipient], input: plaintext)
        #expect(sealed.status == 0, "\(sealed.stderr)")
        #expect(try AgeFile.decrypt(sealed.stdout, with: [key.identity]) == plaintext)
    }

    @Test func everyRecipientOpensItAndNobodyElse() throws {
        let first = try keyPair(), second = try keyPair(), stranger = try keyPair()
        defer { for key in [first, second, stranger] { try? FileManager.default.removeItem(atPath: key.file) } }
        let sealed = try AgeFile.encrypt(Data("state".utf8), to: [try AgeRecipient(first.recipient), try AgeRecipient(second.recipient)])
        for key in [first, second] {
            let opened = try run(Self.age, ["-d", "-i", key.file], input: sealed)
            #expect(opened.status == 0 && opened.stdout == Data("state".utf8), "\(opened.stderr)")
        }
        #expect(throws: AgeError.self) { try AgeFile.decrypt(sealed, with: [stranger.identity]) }
        #expect(try run(Self.age, ["-d", "-i", stranger.file], input: sealed).status != 0)
    }

    @Test func aChangedOrCutFileIsRefused() throws {
        let key = try keyPair()
        defer { try? FileManager.default.removeItem(atPath: key.file) }
        let sealed = try AgeFile.encrypt(payload(100_000), to: [try AgeRecipient(key.recipient)])
        var payloadFlipped = sealed
        payloadFlipped[payloadFlipped.count - 100] ^= 1
        #expect(throws: AgeError.self) { try AgeFile.decrypt(payloadFlipped, with: [key.identity]) }
        #expect(throws: AgeError.self) { try AgeFile.decrypt(sealed.prefix(sealed.count - 70_000), with: [key.identity]) }
        // A whole chunk dropped from the end: the chunk now last was sealed as not last.
        #expect(throws: AgeError.self) { try AgeFile.decrypt(sealed.prefix(sealed.count - (100_000 - 65_536) - 16), with: [key.identity]) }
        var header = Array(sealed)
        let arrow = header.firstIndex(of: UInt8(ascii: ">"))!
        header[arrow + 2] = UInt8(ascii: "Y")   // "X25519" renamed: the MAC no longer covers it
        #expect(throws: AgeError.self) { try AgeFile.decrypt(Data(header), with: [key.identity]) }
    }

    @Test func keysAreRefusedWithoutRepeatingASecret() throws {
        #expect(throws: AgeError.self) { try AgeRecipient("age1notarecipient") }
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
        do {
            _ = try AgeIdentity.parseFile("# a comment\n\n" + secret + "\n", file: "keys.txt")
            Issue.record("a bad checksum was taken")
        } catch {
            #expect(error.message.hasPrefix("keys.txt:3:") && !error.message.contains(secret), "\(error)")
        }
        let generated = try AgeIdentity.generate()
        #expect(try AgeIdentity(generated.text).text == generated.text)
    }
}
