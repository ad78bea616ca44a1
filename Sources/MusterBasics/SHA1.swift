/// SHA-1 (FIPS 180-4) for etcd's member and cluster IDs only, never for security. It is here,
/// not in libcrypto, because libcrypto's first digest loads its configuration and providers: 2.3
/// MiB of a `render` that needs no other cryptography (measured; a plan derives an ID per member).
struct SHA1 {
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)

    /// The 20-byte digest of `message`.
    static func digest(_ message: [UInt8]) -> [UInt8] {
        var hasher = SHA1()
        var padded = message
        padded.append(0x80)
        while padded.count % 64 != 56 { padded.append(0) }
        let bitLength = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { padded.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        padded.withUnsafeBufferPointer { buffer in
            for offset in stride(from: 0, to: buffer.count, by: 64) { hasher.compress(buffer[offset..<offset + 64]) }
        }
        var digest: [UInt8] = []
        digest.reserveCapacity(20)
        for word in [hasher.state.0, hasher.state.1, hasher.state.2, hasher.state.3, hasher.state.4] {
            for shift in stride(from: 24, through: 0, by: -8) { digest.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return digest
    }

    private mutating func compress(_ block: Slice<UnsafeBufferPointer<UInt8>>) {
        var words = [UInt32](repeating: 0, count: 80)
        var index = block.startIndex
        for t in 0..<16 {
            words[t] = UInt32(block[index]) << 24 | UInt32(block[index + 1]) << 16 | UInt32(block[index + 2]) << 8 | UInt32(block[index + 3])
            index += 4
        }
        for t in 16..<80 {
            let mixed = words[t - 3] ^ words[t - 8] ^ words[t - 14] ^ words[t - 16]
            words[t] = mixed << 1 | mixed >> 31
        }
        var (a, b, c, d, e) = state
        for t in 0..<80 {
            let f: UInt32, k: UInt32
            switch t {
            case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let next = (a << 5 | a >> 27) &+ f &+ e &+ k &+ words[t]
            (a, b, c, d, e) = (next, a, b << 30 | b >> 2, c, d)
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }
}
