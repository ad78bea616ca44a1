import Foundation

/// etcd's version read from its binary's bytes, never by running it: an inventory from a pull
/// request may name any file as `member.binary`, and `render` must execute nothing.
///
/// etcd keeps its version in package variables (`version.MinClusterVersion = "3.0.0"`, then
/// `version.Version`, the same in 3.4's `go.etcd.io/etcd/version` and 3.5's
/// `go.etcd.io/etcd/api/v3/version`). Go lays a statically initialised string variable out in
/// `.data` as a (pointer, length) pair whose bytes are in `.rodata`; the binaries Debian ships are
/// stripped (no symbol names) and their build info carries no module version, so the version is
/// the string right after the one that says `3.0.0`. Checked on etcd 3.4.23, 3.5.16 and 3.5.30.
enum EtcdBinaryVersion {
    /// The version, or nil when the file is no 64-bit little-endian ELF or holds no such pair.
    static func read(_ path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        func bytes(at offset: UInt64, count: Int) -> [UInt8]? {
            guard count >= 0, count <= 64 << 20, (try? file.seek(toOffset: offset)) != nil,
                  let data = try? file.read(upToCount: count), data.count == count else { return nil }
            return [UInt8](data)
        }
        guard let header = bytes(at: 0, count: 64), header.starts(with: [0x7F, 0x45, 0x4C, 0x46, 2, 1]) else { return nil }
        let sectionsAt = header.uint64(0x28), entrySize = Int(header.uint16(0x3A)), count = Int(header.uint16(0x3C))
        let namesIndex = Int(header.uint16(0x3E))
        guard entrySize >= 64, count > namesIndex, count <= 4096,
              let table = bytes(at: sectionsAt, count: entrySize * count) else { return nil }
        struct Section { var name: UInt32, address: UInt64, offset: UInt64, size: UInt64 }
        let sections = (0..<count).map { index in
            let at = index * entrySize
            return Section(name: table.uint32(at), address: table.uint64(at + 16), offset: table.uint64(at + 24), size: table.uint64(at + 32))
        }
        let names = sections[namesIndex]
        guard let nameBytes = bytes(at: names.offset, count: Int(min(names.size, 1 << 20))) else { return nil }
        func named(_ wanted: String) -> Section? {
            sections.first { section in
                let start = Int(section.name)
                guard start < nameBytes.count else { return false }
                let end = nameBytes[start...].firstIndex(of: 0) ?? nameBytes.count
                return String(decoding: nameBytes[start..<end], as: UTF8.self) == wanted
            }
        }
        guard let rodata = named(".rodata"), let data = named(".data"),
              let constants = bytes(at: rodata.offset, count: Int(rodata.size)),
              let variables = bytes(at: data.offset, count: Int(data.size)) else { return nil }
        func string(at pair: Int) -> String? {
            guard pair + 16 <= variables.count else { return nil }
            let address = variables.uint64(pair), length = variables.uint64(pair + 8)
            guard (5...16).contains(length), address >= rodata.address, address - rodata.address + length <= UInt64(constants.count) else { return nil }
            let start = Int(address - rodata.address)
            return String(decoding: constants[start..<start + Int(length)], as: UTF8.self)
        }
        for pair in stride(from: 0, to: variables.count - 16, by: 8) where string(at: pair) == "3.0.0" {
            if let version = string(at: pair + 16), MemberBinary.isValid(version) { return version }
        }
        return nil
    }
}

private extension Array where Element == UInt8 {
    func uint16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    func uint32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[at + $1]) << (8 * $1) } }
    func uint64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[at + $1]) << (8 * $1) } }
}
