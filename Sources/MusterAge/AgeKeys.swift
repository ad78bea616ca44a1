import Foundation

/// An age X25519 recipient, `age1...`: whoever holds its identity can open what is sealed to it.
public struct AgeRecipient: Sendable, Equatable {
    let publicKey: [UInt8]

    public init(_ text: String) throws(AgeError) {
        guard let (hrp, data) = Bech32.decode(text), hrp == "age", data.count == 32, text == text.lowercased() else {
            throw AgeError("\(String(reflecting: text)) is not an age X25519 recipient (age1..., as age-keygen prints it)")
        }
        publicKey = data
    }

    public var text: String { Bech32.encode(hrp: "age", data: publicKey) }
}

/// An age X25519 identity, `AGE-SECRET-KEY-1...`, as age-keygen writes it to a file.
public struct AgeIdentity: Sendable {
    let privateKey: [UInt8]

    public init(_ text: String) throws(AgeError) {
        guard let (hrp, data) = Bech32.decode(text), hrp == "age-secret-key-", data.count == 32, text == text.uppercased() else {
            // The key itself is never repeated in an error.
            throw AgeError("not an age X25519 identity (AGE-SECRET-KEY-1..., as age-keygen writes it)")
        }
        privateKey = data
    }

    /// A new identity (tests, and an operator who wants one without age-keygen).
    public static func generate() throws -> AgeIdentity {
        let bytes: [UInt8]
        do { bytes = try Primitives.random(32) } catch { throw AgeError("\(error)") }
        return try AgeIdentity(Bech32.encode(hrp: "age-secret-key-", data: bytes).uppercased())
    }

    public var recipient: AgeRecipient {
        get throws {
            do { return try AgeRecipient(Bech32.encode(hrp: "age", data: try Primitives.x25519Public(of: privateKey))) }
            catch let error as AgeError { throw error } catch { throw AgeError("\(error)") }
        }
    }

    public var text: String { Bech32.encode(hrp: "age-secret-key-", data: privateKey).uppercased() }

    /// Every identity of an identity file: one per line, `#` comments and blank lines skipped.
    /// `file` names the file in errors; the line number says which line failed.
    public static func parseFile(_ contents: String, file: String) throws(AgeError) -> [AgeIdentity] {
        var identities: [AgeIdentity] = []
        for (index, line) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do { identities.append(try AgeIdentity(trimmed)) } catch { throw AgeError("\(file):\(index + 1): \(error.message)") }
        }
        guard !identities.isEmpty else { throw AgeError("\(file): no age identity in it") }
        return identities
    }
}

public struct AgeError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}
