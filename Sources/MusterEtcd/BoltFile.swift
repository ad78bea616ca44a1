import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Just enough of bbolt's file format (etcd's backend, `go.etcd.io/bbolt` page.go, node.go,
/// db.go) to read a snapshot without etcd: the newest valid meta page, top-level buckets by name,
/// a bucket's value for a key, and a bucket's last key. Pages are read one at a time with
/// `pread`, so a large snapshot is never held in memory.
///
/// Layout (little-endian): a page starts with `id u64, flags u16, count u16, overflow u32`; meta
/// pages 0 and 1 hold `magic, version, pageSize, flags u32; root {pgid, sequence} u64; freelist,
/// pgid, txid, checksum u64` (checksum: FNV-1a 64 of the 56 bytes before it). Branch elements are
/// `pos u32, ksize u32, pgid u64`, leaf elements `flags u32, pos u32, ksize u32, vsize u32`, both
/// 16 bytes, `pos` counted from the element itself. A bucket's value is `root u64, sequence u64`,
/// followed by an inline page when `root` is 0.
public final class BoltFile {
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    private let descriptor: Int32
    public let path: String
    public let pageSize: Int
    private let root: UInt64
    /// The file's length; a snapshot file may end with 32 more bytes (its SHA-256).
    public let length: Int

    private static let magic: UInt32 = 0xED0C_DAED
    private static let branchFlag: UInt16 = 0x01, leafFlag: UInt16 = 0x02, metaFlag: UInt16 = 0x04
    private static let bucketLeafFlag: UInt32 = 0x01
    private static let pageHeaderSize = 16, elementSize = 16

    public init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FormatError(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        do {
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw FormatError(description: "cannot stat \(path)") }
            length = Int(info.st_size)
            let first = try Self.read(descriptor, offset: 0, count: 4096, path: path)
            let meta0 = Self.meta(first, at: 0)
            let size = meta0.map { Int($0.pageSize) } ?? 4096
            guard size >= 1024, size <= 65536, size & (size - 1) == 0 else {
                throw FormatError(description: "\(path) is not a bbolt file (page size \(size))")
            }
            pageSize = size
            let second = try Self.read(descriptor, offset: size, count: 4096, path: path)
            let meta1 = Self.meta(second, at: 0)
            guard let chosen = [meta0, meta1].compactMap({ $0 }).max(by: { $0.txid < $1.txid }) else {
                throw FormatError(description: "\(path) is not a bbolt file (no valid meta page)")
            }
            root = chosen.root
        } catch {
            close(descriptor)
            throw error
        }
    }

    deinit { close(descriptor) }

    /// The value of `key` in the top-level bucket `bucket`, nil when either is missing.
    public func value(bucket: String, key: String) throws -> [UInt8]? {
        guard let page = try bucketPage(bucket) else { return nil }
        return try find(Array(key.utf8), in: page)?.value
    }

    /// The last (greatest) key of the top-level bucket `bucket`, nil when it is missing or empty.
    public func lastKey(bucket: String) throws -> [UInt8]? {
        guard let page = try bucketPage(bucket) else { return nil }
        // A tree visits each page once; a damaged one that shares pages between branches could
        // make the walk exponential: it may read no more pages than the file has.
        var budget = pageCount
        return try last(in: page, depth: 0, budget: &budget)
    }

    // MARK: pages

    private struct Meta { var pageSize: UInt32; var root: UInt64; var txid: UInt64 }

    private static func meta(_ bytes: [UInt8], at offset: Int) -> Meta? {
        guard bytes.count >= offset + pageHeaderSize + 64 else { return nil }
        guard u16(bytes, offset + 8) & metaFlag != 0 else { return nil }
        let m = offset + pageHeaderSize
        guard u32(bytes, m) == magic, u32(bytes, m + 4) == 2 else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes[m..<(m + 56)] {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        guard hash == u64(bytes, m + 56) else { return nil }
        return Meta(pageSize: u32(bytes, m + 8), root: u64(bytes, m + 16), txid: u64(bytes, m + 48))
    }

    /// A page as bytes: its header and elements, with its overflow pages.
    private struct Page {
        var bytes: [UInt8]
        var base: Int  // where the page header starts in `bytes`
        var flags: UInt16 { BoltFile.u16(bytes, base + 8) }
        var count: Int { Int(BoltFile.u16(bytes, base + 10)) }
        func element(_ index: Int) -> Int { base + BoltFile.pageHeaderSize + index * BoltFile.elementSize }
    }

    /// Whole pages in the file: every page id the file names is checked against this before any
    /// arithmetic on it (a damaged id near 2^64 would otherwise overflow, a trap in Swift).
    private var pageCount: UInt64 { UInt64(length / pageSize) }

    private func page(_ id: UInt64) throws -> Page {
        guard id >= 2, id < pageCount else {
            throw FormatError(description: "\(path): page \(id) lies outside the file (\(pageCount) pages)")
        }
        let offset = Int(id) * pageSize
        let head = try Self.read(descriptor, offset: offset, count: Self.pageHeaderSize, path: path)
        let overflow = UInt64(Self.u32(head, 12))
        guard overflow < pageCount - id else { throw FormatError(description: "\(path): page \(id) runs past the end") }
        let size = (Int(overflow) + 1) * pageSize
        return Page(bytes: try Self.read(descriptor, offset: offset, count: size, path: path), base: 0)
    }

    private func key(_ page: Page, _ index: Int) throws -> [UInt8] {
        let element = page.element(index)
        let isLeaf = page.flags & Self.leafFlag != 0
        let pos = Int(Self.u32(page.bytes, element + (isLeaf ? 4 : 0)))
        let size = Int(Self.u32(page.bytes, element + (isLeaf ? 8 : 4)))
        let start = element + pos
        guard start >= 0, start + size <= page.bytes.count else { throw FormatError(description: "\(path): damaged page element") }
        return Array(page.bytes[start..<(start + size)])
    }

    private func leafValue(_ page: Page, _ index: Int) throws -> (flags: UInt32, value: [UInt8]) {
        let element = page.element(index)
        let flags = Self.u32(page.bytes, element)
        let pos = Int(Self.u32(page.bytes, element + 4))
        let ksize = Int(Self.u32(page.bytes, element + 8)), vsize = Int(Self.u32(page.bytes, element + 12))
        let start = element + pos + ksize
        guard start >= 0, start + vsize <= page.bytes.count else { throw FormatError(description: "\(path): damaged leaf element") }
        return (flags, Array(page.bytes[start..<(start + vsize)]))
    }

    private func check(_ page: Page) throws {
        guard page.element(page.count) <= page.bytes.count else { throw FormatError(description: "\(path): damaged page") }
    }

    /// The leaf element for `key` under `page` (a bucket's root), by descending branch pages.
    private func find(_ wanted: [UInt8], in start: Page) throws -> (flags: UInt32, value: [UInt8])? {
        var current = start
        for _ in 0..<64 {
            try check(current)
            if current.flags & Self.branchFlag != 0 {
                var chosen: Int?
                for index in 0..<current.count {
                    let key = try key(current, index)
                    if key.lexicographicallyPrecedes(wanted) || key == wanted { chosen = index } else { break }
                }
                guard let chosen else { return nil }
                current = try page(Self.u64(current.bytes, current.element(chosen) + 8))
            } else if current.flags & Self.leafFlag != 0 {
                for index in 0..<current.count where try key(current, index) == wanted {
                    return try leafValue(current, index)
                }
                return nil
            } else {
                throw FormatError(description: "\(path): unexpected page type \(current.flags)")
            }
        }
        throw FormatError(description: "\(path): tree deeper than 64 levels")
    }

    private func last(in current: Page, depth: Int, budget: inout UInt64) throws -> [UInt8]? {
        guard depth < 64 else { throw FormatError(description: "\(path): tree deeper than 64 levels") }
        try check(current)
        if current.flags & Self.leafFlag != 0 {
            return current.count == 0 ? nil : try key(current, current.count - 1)
        }
        guard current.flags & Self.branchFlag != 0 else {
            throw FormatError(description: "\(path): unexpected page type \(current.flags)")
        }
        for index in stride(from: current.count - 1, through: 0, by: -1) {
            guard budget > 0 else { throw FormatError(description: "\(path): its branch pages name more pages than the file holds") }
            budget -= 1
            let child = try page(Self.u64(current.bytes, current.element(index) + 8))
            if let key = try last(in: child, depth: depth + 1, budget: &budget) { return key }
        }
        return nil
    }

    /// The root page of a top-level bucket (inline buckets carry their page in the value).
    private func bucketPage(_ name: String) throws -> Page? {
        guard let entry = try find(Array(name.utf8), in: try page(root)), entry.flags & Self.bucketLeafFlag != 0 else { return nil }
        guard entry.value.count >= 16 else { throw FormatError(description: "\(path): damaged bucket \(name)") }
        let bucketRoot = Self.u64(entry.value, 0)
        if bucketRoot == 0 { return Page(bytes: entry.value, base: 16) }
        return try page(bucketRoot)
    }

    // MARK: bytes

    private static func read(_ descriptor: Int32, offset: Int, count: Int, path: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw FormatError(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            done += got
        }
        return Array(buffer.prefix(done))
    }

    static func u16(_ b: [UInt8], _ i: Int) -> UInt16 {
        guard i + 2 <= b.count else { return 0 }
        return UInt16(b[i]) | UInt16(b[i + 1]) << 8
    }
    static func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
        guard i + 4 <= b.count else { return 0 }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[i + $1]) << (8 * $1) }
    }
    static func u64(_ b: [UInt8], _ i: Int) -> UInt64 {
        guard i + 8 <= b.count else { return 0 }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[i + $1]) << (8 * UInt64($1)) }
    }
}
