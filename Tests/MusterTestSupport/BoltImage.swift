import Foundation

/// The smallest bbolt database etcd's snapshot reader accepts (`go.etcd.io/bbolt` page.go, db.go):
/// meta pages 0 and 1, the root leaf on page 2 holding the `key` bucket, whose leaf is page 3.
/// Every page id in it can be set, so a test can hand muster a damaged file (an id the file
/// cannot hold, an overflow past its end) whose meta pages are still valid.
public struct BoltImage: Sendable {
    public static let pageSize = 4096
    /// The root page the newest meta page names.
    public var rootPage: UInt64 = 2
    /// The page the `key` bucket's value names as its root.
    public var keyBucketRoot: UInt64 = 3
    /// The `overflow` field of the `key` bucket's page header.
    public var keyPageOverflow: UInt32 = 0
    /// The main revisions whose keys (`8-byte main, _, 8-byte sub`) the `key` bucket holds.
    public var revisions: [UInt64] = [5, 7]

    public init() {}

    /// The database (four pages); a snapshot file is this followed by its 32-byte SHA-256.
    public var bytes: [UInt8] {
        var file = [UInt8](repeating: 0, count: 4 * Self.pageSize)
        for (page, txid) in [(0, UInt64(1)), (1, UInt64(2))] { writeMeta(into: &file, page: page, txid: txid) }
        let bucketValue = le(keyBucketRoot) + le(UInt64(0))
        writeLeaf(into: &file, page: 2, overflow: 0, elements: [(flags: 1, key: Array("key".utf8), value: bucketValue)])
        let keys = revisions.sorted().map { be($0) + [UInt8(ascii: "_")] + be(0) }
        writeLeaf(into: &file, page: 3, overflow: keyPageOverflow, elements: keys.map { (flags: 0, key: $0, value: [1]) })
        return file
    }

    private func writeMeta(into file: inout [UInt8], page: Int, txid: UInt64) {
        let start = page * Self.pageSize
        put(le(UInt64(page)) + le(UInt16(0x04)) + le(UInt16(0)) + le(UInt32(0)), into: &file, at: start)
        var meta = le(UInt32(0xED0C_DAED)) + le(UInt32(2)) + le(UInt32(Self.pageSize)) + le(UInt32(0))
        meta += le(rootPage) + le(UInt64(0))                 // root bucket: page, sequence
        meta += le(UInt64(0)) + le(UInt64(4)) + le(txid)     // freelist, high-water page id, txid
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in meta {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        put(meta + le(hash), into: &file, at: start + 16)
    }

    private func writeLeaf(into file: inout [UInt8], page: Int, overflow: UInt32,
                           elements: [(flags: UInt32, key: [UInt8], value: [UInt8])]) {
        let start = page * Self.pageSize
        put(le(UInt64(page)) + le(UInt16(0x02)) + le(UInt16(elements.count)) + le(overflow), into: &file, at: start)
        var data = start + 16 + 16 * elements.count
        for (index, element) in elements.enumerated() {
            let header = start + 16 + 16 * index
            put(le(element.flags) + le(UInt32(data - header)) + le(UInt32(element.key.count)) + le(UInt32(element.value.count)),
                into: &file, at: header)
            put(element.key + element.value, into: &file, at: data)
            data += element.key.count + element.value.count
        }
    }

    private func put(_ bytes: [UInt8], into file: inout [UInt8], at offset: Int) {
        file.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    private func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
}
