import Foundation
import MusterBasics

/// The age file format, version 1 (age-encryption.org/v1), for X25519 recipients: what the `age`
/// command writes and reads. A random file key is wrapped for each recipient; the payload is
/// ChaCha20-Poly1305 in 64 KiB chunks (the STREAM construction) under a key derived from it.
public enum AgeFile {
    static let intro = "age-encryption.org/v1"
    static let chunkSize = 64 * 1024
    static let x25519Label = "age-encryption.org/v1/X25519"

    public static func encrypt(_ plaintext: Data, to recipients: [AgeRecipient]) throws(AgeError) -> Data {
        guard !recipients.isEmpty else { throw AgeError("no recipient: nobody could open it") }
        do {
            let fileKey = try Primitives.random(16)
            var header = intro + "\n"
            for recipient in recipients {
                let ephemeral = try Primitives.random(32)
                let share = try Primitives.x25519Public(of: ephemeral)
                let secret = try Primitives.x25519(ephemeral, recipient.publicKey)
                let wrapKey = try Primitives.hkdf(key: secret, salt: share + recipient.publicKey, info: x25519Label)
                let body = try fileKey.withUnsafeBytes { try Primitives.seal(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), $0) }
                header += "-> X25519 " + base64(share) + "\n" + wrapped(base64(body)) + "\n"
            }
            header += "---"
            let mac = [UInt8](Digest.hmacSHA256(key: Data(try Primitives.hkdf(key: fileKey, salt: [], info: "header")), message: Data(header.utf8)))
            var output = Data((header + " " + base64(mac) + "\n").utf8)
            let nonce = try Primitives.random(16)
            output.append(contentsOf: nonce)
            let payloadKey = try Primitives.hkdf(key: fileKey, salt: nonce, info: "payload")
            try plaintext.withUnsafeBytes { bytes in
                var offset = 0, counter: UInt64 = 0
                repeat {
                    let end = min(offset + chunkSize, bytes.count)
                    let last = end == bytes.count
                    output.append(contentsOf: try Primitives.seal(key: payloadKey, nonce: chunkNonce(counter, last: last),
                                                                  UnsafeRawBufferPointer(rebasing: bytes[offset..<end])))
                    offset = end
                    counter += 1
                } while offset < bytes.count
            }
            return output
        } catch let error as AgeError {
            throw error
        } catch {
            throw AgeError("cannot encrypt: \(error)")
        }
    }

    public static func decrypt(_ file: Data, with identities: [AgeIdentity]) throws(AgeError) -> Data {
        let bytes = [UInt8](file)
        var position = 0
        func line() throws(AgeError) -> String {
            guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw AgeError("not an age file: its header ends early") }
            defer { position = end + 1 }
            return String(decoding: bytes[position..<end], as: UTF8.self)
        }
        guard try line() == intro else { throw AgeError("not an age file (version 1): its first line is not \(intro)") }
        var stanzas: [(type: String, arguments: [String], body: [UInt8])] = []
        var macLine = ""
        var headerEnd = 0
        while true {
            let start = position
            let text = try line()
            if text.hasPrefix("--- ") || text == "---" {
                headerEnd = start + 3
                macLine = String(text.dropFirst(4))
                break
            }
            guard text.hasPrefix("-> ") else { throw AgeError("not an age file: a header line is neither a stanza nor the MAC") }
            let fields = text.dropFirst(3).split(separator: " ").map(String.init)
            guard let type = fields.first else { throw AgeError("not an age file: a stanza without a type") }
            var body = ""
            while true {
                let bodyLine = try line()
                body += bodyLine
                if bodyLine.utf8.count < 64 { break }
            }
            guard let decoded = unbase64(body) else { throw AgeError("not an age file: a stanza body is not base64") }
            stanzas.append((type, Array(fields.dropFirst()), decoded))
        }
        var fileKey: [UInt8]?
        search: for stanza in stanzas where stanza.type == "X25519" {
            guard stanza.arguments.count == 1, let share = unbase64(stanza.arguments[0]), share.count == 32,
                  stanza.body.count == 32 else { throw AgeError("not an age file: a malformed X25519 stanza") }
            for identity in identities {
                guard let recipient = try? identity.recipient,
                      let secret = try? Primitives.x25519(identity.privateKey, share),
                      let wrapKey = try? Primitives.hkdf(key: secret, salt: share + recipient.publicKey, info: x25519Label),
                      let key = try? stanza.body.withUnsafeBytes({ try Primitives.open(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), $0) }),
                      key.count == 16 else { continue }
                fileKey = key
                break search
            }
        }
        guard let fileKey else { throw AgeError("no identity given opens it: it was encrypted to other recipients") }
        guard let mac = unbase64(macLine), let headerKey = try? Primitives.hkdf(key: fileKey, salt: [], info: "header"),
              [UInt8](Digest.hmacSHA256(key: Data(headerKey), message: Data(bytes[..<headerEnd]))) == mac else {
            throw AgeError("its header was changed (the MAC does not match)")
        }
        guard bytes.count - position >= 16 + 16 else { throw AgeError("its payload is cut short") }
        let nonce = Array(bytes[position..<(position + 16)])
        position += 16
        guard let payloadKey = try? Primitives.hkdf(key: fileKey, salt: nonce, info: "payload") else { throw AgeError("HKDF failed") }
        var plaintext = Data()
        var counter: UInt64 = 0
        while true {
            let remaining = bytes.count - position
            let last = remaining <= chunkSize + 16
            let length = last ? remaining : chunkSize + 16
            guard length >= 16 else { throw AgeError("its payload is cut short") }
            let opened = try? bytes[position..<(position + length)].withUnsafeBytes {
                try Primitives.open(key: payloadKey, nonce: chunkNonce(counter, last: last), $0)
            }
            guard let chunk = opened else {
                throw AgeError("its payload was changed or cut short (chunk \(counter) does not authenticate)")
            }
            if last && chunk.isEmpty && counter > 0 { throw AgeError("its payload ends with an empty chunk, which age never writes") }
            plaintext.append(contentsOf: chunk)
            position += length
            counter += 1
            if last { break }
        }
        return plaintext
    }

    static func chunkNonce(_ counter: UInt64, last: Bool) -> [UInt8] {
        [0, 0, 0] + withUnsafeBytes(of: counter.bigEndian, Array.init) + [last ? 1 : 0]
    }

    static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    /// Canonical unpadded base64 only (what age writes).
    static func unbase64(_ text: String) -> [UInt8]? {
        guard !text.contains("=") else { return nil }
        let padded = text + String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: padded), base64(Array(data)) == text else { return nil }
        return Array(data)
    }

    /// Lines of 64 columns; the last is always shorter (an empty one after a full line).
    static func wrapped(_ text: String) -> String {
        var lines: [String] = [], rest = Substring(text)
        while rest.utf8.count >= 64 { lines.append(String(rest.prefix(64))); rest = rest.dropFirst(64) }
        lines.append(String(rest))
        return lines.joined(separator: "\n")
    }
}
