import Foundation
import MusterBasics
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// What a snapshot file holds, read from the file itself.
///
/// etcd's Snapshot RPC (`etcdserver/api/v3rpc/maintenance.go`, 3.4 and 3.5 alike) sends the
/// database in 32 KiB blobs, `remaining_bytes` counting down to 0, then one more message whose
/// blob is the SHA-256 of every byte before it. `etcdctl snapshot save` writes all blobs as they
/// come, so a snapshot file is the bbolt database followed by its 32-byte digest; restore checks
/// it when the length is 32 past a multiple of 512 (`hasHash := (off % 512) == sha256.Size`) and
/// refuses a file without it unless told to skip the check. muster writes and checks the same.
public struct SnapshotFileFacts: Sendable, Equatable {
    public var path: String
    /// The file's length, digest included.
    public var size: Int64
    /// `sha256sum FILE`: of the whole file as stored.
    public var fileSHA256: String
    /// The database's SHA-256 as recorded at its end.
    public var embeddedSHA256: String?
    /// The digest of the database bytes (the file without its last 32 bytes).
    public var databaseSHA256: String
    /// The highest main revision among the `key` bucket's keys: what `etcdctl snapshot status`
    /// calls the revision.
    public var revision: Int64
    /// `clusterVersion` in the `cluster` bucket (`3.4.0`, `3.5.0`): the minor the cluster ran at.
    public var clusterVersion: String?

    /// The digest etcd appended matches the database.
    public var hashMatches: Bool { embeddedSHA256 == databaseSHA256 }
}

public struct SnapshotError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum SnapshotFile {
    /// Reads `path`: its digests (streamed in 1 MiB chunks, hashed once), then revision and
    /// cluster version from the bbolt pages. Throws when the file is no snapshot at all; a digest
    /// that does not match is reported in the result (`hashMatches`), for the caller to refuse.
    /// `digests`: the file's and its database's, known already (the stream that wrote it hashed
    /// it): only its last 32 bytes and its pages are read.
    public static func inspect(_ path: String, digests: SnapshotDigests? = nil) throws -> SnapshotFileFacts {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw SnapshotError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        let size = Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        let hasDigest = size % 512 == 32
        let databaseLength = hasDigest ? size - 32 : size
        var tail = Data()
        let known: SnapshotDigests
        if let digests {
            if hasDigest {
                try handle.seek(toOffset: UInt64(databaseLength))
                tail = try handle.read(upToCount: 32) ?? Data()
            }
            known = digests
        } else {
            // One hasher: the database's digest taken on the way, before the 32 bytes at the end.
            let hasher = SHA256Hasher()
            var databaseDigest: [UInt8]?
            var offset: Int64 = 0
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                let inDatabase = max(0, min(Int64(chunk.count), databaseLength - offset))
                if inDatabase > 0 { hasher.update(chunk.prefix(Int(inDatabase))) }
                if inDatabase < Int64(chunk.count) {
                    if databaseDigest == nil { databaseDigest = hasher.digestSoFar() }
                    let rest = chunk.suffix(from: chunk.startIndex + Int(inDatabase))
                    hasher.update(rest)
                    tail.append(rest)
                }
                offset += Int64(chunk.count)
            }
            guard offset == size else { throw SnapshotError("\(path) changed while it was read") }
            let database = databaseDigest ?? hasher.digestSoFar()
            known = SnapshotDigests(file: Digest.hex(hasher.finalize()), database: Digest.hex(database))
        }
        let embedded = hasDigest && tail.count == 32 ? Digest.hex(tail) : nil
        let databaseDigest = known.database
        let bolt: BoltFile
        do { bolt = try BoltFile(path: path) } catch {
            if let embedded, embedded != databaseDigest {
                throw SnapshotError("\(path) is damaged: its database hashes to \(databaseDigest), the sha256 at its end says \(embedded) (\(error))")
            }
            throw SnapshotError("\(path) is not an etcd snapshot: \(error)")
        }
        var revision: Int64 = 0
        do {
            // Keys of the `key` bucket are revisions: 8-byte big-endian main, `_`, 8-byte sub.
            if let key = try bolt.lastKey(bucket: "key"), key.count >= 8 {
                revision = Int64(bitPattern: key.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            }
        } catch {
            if let embedded, embedded != databaseDigest {
                throw SnapshotError("\(path) is damaged: its database hashes to \(databaseDigest), the sha256 at its end says \(embedded) (\(error))")
            }
            // The meta pages were valid, the tree under them is not: damaged, whatever the digest.
            throw SnapshotError("\(path) is damaged: cannot read its revision: \(error)")
        }
        let version = (try? bolt.value(bucket: "cluster", key: "clusterVersion")).flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) }
        return SnapshotFileFacts(
            path: path, size: size, fileSHA256: known.file,
            embeddedSHA256: embedded, databaseSHA256: databaseDigest, revision: revision, clusterVersion: version)
    }
}

/// The SHA-256 of a snapshot file and of its database (the file without its last 32 bytes).
public struct SnapshotDigests: Sendable, Equatable {
    public var file: String
    public var database: String
    public init(file: String, database: String) { (self.file, self.database) = (file, database) }
}

/// Where `EtcdClient.saveSnapshot(into:)` puts a snapshot's bytes, in order, as they arrive.
public protocol SnapshotSink {
    func write(_ data: Data) async throws
}

/// What `EtcdClient.saveSnapshot` wrote.
public struct SnapshotDownload: Sendable {
    /// Bytes written: the database and its 32-byte digest.
    public var bytes: Int64
    /// Of the bytes written, hashed as they came (`SnapshotFile.inspect(_:digests:)` takes them).
    public var digests: SnapshotDigests
    public var databaseSHA256: String { digests.database }
    public var seconds: Double
}

extension EtcdClient {
    /// Streams the member's snapshot into a new file at `path` (mode 0600; it must not exist), the
    /// database blob by blob and then the digest etcd sends after it, which must be the SHA-256 of
    /// the bytes before it. Memory stays bounded whatever the size. The file is fsynced; on any
    /// failure it is removed. `seconds` bounds the whole transfer, the transport's read timeout
    /// a stall. Which wire carries it is this one line (and the same in `saveSnapshot(into:)`).
    public func saveSnapshot(to path: String, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await saveSnapshotOverGRPC(to: path, within: seconds)
    }

    /// Streams the snapshot into `sink` as it arrives (the database, then its digest), under the
    /// same checks as `saveSnapshot(to:)`: the digest is checked before it is passed on, so a
    /// sink that sees the stream end without an error has every byte and a matching digest.
    public func saveSnapshot(into sink: any SnapshotSink, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await saveSnapshotOverGRPC(into: sink, within: seconds)
    }

    /// `saveSnapshot` over etcd's gRPC `Maintenance.Snapshot` call, as etcdctl reads it
    /// (`GRPCSnapshotStream`): the same file, checks and bounds, at etcdctl's speed.
    public func saveSnapshotOverGRPC(to path: String, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await writeSnapshot(to: path) { write in try await grpcStream(within: seconds, write: write) }
    }

    public func saveSnapshotOverGRPC(into sink: any SnapshotSink, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await grpcStream(within: seconds) { try await sink.write($0) }
    }

    private func grpcStream(within seconds: TimeInterval, write: (Data) async throws -> Void) async throws -> SnapshotDownload {
        let deadline = NIODeadline.now() + .milliseconds(Int64(max(seconds, 0.001) * 1000))
        return try await GRPCSnapshotStream.save(baseURL: baseURL, tls: http.tls, deadline: deadline,
                                                 connectTimeout: HTTP.connectTimeout, readTimeout: HTTP.readTimeout, write: write)
    }

    /// `saveSnapshot` through the JSON gateway (`POST /v3/maintenance/snapshot`, newline-delimited
    /// `{"result":{"blob":BASE64,"remaining_bytes":N}}`, at most one line held): etcd's side of
    /// it runs at about a third of etcdctl's throughput (measured: docs/benchmarks.md).
    public func saveSnapshotThroughGateway(to path: String, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await writeSnapshot(to: path) { write in
            try await stream(url: baseURL + "/v3/maintenance/snapshot", within: seconds, write: write)
        }
    }

    public func saveSnapshotThroughGateway(into sink: any SnapshotSink, within seconds: TimeInterval = 3600) async throws -> SnapshotDownload {
        try await stream(url: baseURL + "/v3/maintenance/snapshot", within: seconds) { try await sink.write($0) }
    }

    /// A new file at `path` (mode 0600; it must not exist) filled by `fill` through the writer it
    /// is given (each chunk written off the cooperative pool: a slow disk must not hold one of its
    /// threads), fsynced; removed on any failure.
    private func writeSnapshot(to path: String,
                               _ fill: ((Data) async throws -> Void) async throws -> SnapshotDownload) async throws -> SnapshotDownload {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SnapshotError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        var closed = false
        do {
            let download = try await fill { chunk in
                try await offPool { try EtcdClient.write(chunk, to: descriptor, path: path) }
            }
            try await offPool {
                guard fsync(descriptor) == 0 else { throw SnapshotError("cannot fsync \(path): \(String(cString: strerror(errno)))") }
            }
            closed = true
            guard close(descriptor) == 0 else { throw SnapshotError("cannot close \(path): \(String(cString: strerror(errno)))") }
            return download
        } catch {
            if !closed { close(descriptor) }
            unlink(path)
            throw error
        }
    }

    private func stream(url: String, within seconds: TimeInterval, write: (Data) async throws -> Void) async throws -> SnapshotDownload {
        let context = try http.tlsContext(for: url)
        let request = HTTPTransport.Request(method: .POST, url: url, headers: [("Content-Type", "application/json")],
                                            body: ByteBuffer(string: "{}"))
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = Deadline(seconds: seconds)
        // The whole transfer's bound until the answer's head, then checked chunk by chunk; the
        // connect (10 s) and read (30 s) timeouts bound a member that does not answer or stalls.
        let limits = HTTPTransport.Limits(
            connectTimeout: HTTP.connectTimeout, deadline: .now() + .milliseconds(Int64(max(seconds, 0.001) * 1000)),
            deadlineCoversBody: false, readTimeout: HTTP.readTimeout)
        /// Whether the answer's head came: failures after it are the stream's.
        var streaming = false
        do {
            return try await HTTPTransport.exchange(request, tls: context, limits: limits) { head, body in
                guard head.status == .ok else {
                    let text = (try? await body.collect(upTo: 1 << 16)).map { Data($0.readableBytesView) } ?? Data()
                    throw EtcdClientError(kind: .http, url: url, httpStatus: Int(head.status.code),
                                          message: EtcdClient.gatewayMessage(HTTPAnswer(status: Int(head.status.code), body: text)))
                }
                streaming = true
                var parser = SnapshotStreamParser(url: url)
                let hasher = SHA256Hasher()
                var databaseDigest = ""
                var written: Int64 = 0
                // Hashed and checked here, written off the cooperative pool (a slow disk must not
                // hold one of its threads), one write per chunk of the answer.
                func take(_ messages: [SnapshotStreamParser.Message]) async throws {
                    var batch = Data()
                    for message in messages {
                        switch message {
                        case .data(let blob):
                            hasher.update(blob)
                            batch.append(blob)
                        case .digest(let blob):
                            let computed = Digest.hex(hasher.digestSoFar())
                            guard Digest.hex(blob) == computed else {
                                throw SnapshotError("\(url): the snapshot's digest \(Digest.hex(blob)) does not match its \(written + Int64(batch.count)) bytes (sha256 \(computed)): damaged in transit")
                            }
                            // The file's digest goes on through the 32 bytes that end it.
                            hasher.update(blob)
                            databaseDigest = computed
                            batch.append(blob)
                        }
                    }
                    guard !batch.isEmpty else { return }
                    let chunk = batch
                    try await write(chunk)
                    written += Int64(chunk.count)
                }
                // One chunk at a time: the connection reads on only as chunks are taken.
                while let buffer = try await body.next() {
                    guard !deadline.passed else { throw SnapshotError("\(url): snapshot not received within \(deadline.text)") }
                    try await take(try buffer.withUnsafeReadableBytes({ try parser.feed($0) }))
                }
                // A last line without its newline still counts (and its digest is still checked).
                try await take(try parser.finish())
                return SnapshotDownload(bytes: written, digests: SnapshotDigests(file: Digest.hex(hasher.finalize()), database: databaseDigest),
                                        seconds: (clock.now - started).seconds)
            }
        } catch let error as EtcdClientError {
            throw error
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw HTTP.clientError(error, url: url, prefix: streaming ? "snapshot stream: " : "")
        }
    }
}

extension EtcdClient {
    fileprivate static func write(_ data: Data, to descriptor: Int32, path: String) throws {
        if let code = data.withUnsafeBytes({ AtomicFile.writeAll(descriptor, $0) }) {
            throw SnapshotError("cannot write \(path): \(String(cString: strerror(code)))")
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Splits the gateway's stream into lines and each line into a blob: the database's bytes until
/// the first message's `blob + remaining_bytes` are in, then exactly one 32-byte digest.
///
/// Bytes move only by `memcpy`/`memchr` (Foundation's `Data`), never element by element: this
/// loop sees every byte of the snapshot once more as base64, and a debug build's generic code
/// made it a tenth as fast as etcdctl (measured).
struct SnapshotStreamParser {
    enum Message { case data(Data), digest(Data) }
    let url: String
    private var pending = Data()
    private var total: Int64?
    private var received: Int64 = 0
    private(set) var digest: Data?
    private static let blobKey = Data(#""blob":""#.utf8)
    /// The longest line taken: etcd's lines carry 32 KiB blobs (about 44 KiB as base64 and
    /// JSON); a server that sends more without a newline is not etcd's gateway, and what it
    /// sends is never buffered past this.
    let maximumLine: Int

    init(url: String, maximumLine: Int = 1 << 20) {
        self.url = url
        self.maximumLine = maximumLine
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws -> [Message] {
        pending.append(contentsOf: bytes)
        var messages: [Message] = []
        var consumed = 0
        while true {
            let newline = pending.withUnsafeBytes { raw -> Int? in
                guard consumed < raw.count, let base = raw.baseAddress,
                      let found = memchr(base + consumed, 0x0A, raw.count - consumed) else { return nil }
                return base.distance(to: UnsafeRawPointer(found))
            }
            guard let newline else { break }
            guard newline - consumed <= maximumLine else { throw lineTooLong() }
            if newline - consumed > 1 {
                messages.append(try message(pending.subdata(in: (pending.startIndex + consumed)..<(pending.startIndex + newline))))
            }
            consumed = newline + 1
        }
        if consumed > 0 { pending = pending.subdata(in: (pending.startIndex + consumed)..<pending.endIndex) }
        guard pending.count <= maximumLine else { throw lineTooLong() }
        return messages
    }

    private func lineTooLong() -> SnapshotError {
        SnapshotError("\(url): the snapshot stream sent a line longer than \(maximumLine) bytes (no newline): not etcd's snapshot stream")
    }

    /// Ends the stream: a last line without its newline is taken (its message returned).
    @discardableResult
    mutating func finish() throws -> [Message] {
        var last: [Message] = []
        if pending.contains(where: { $0 != 32 && $0 != 13 && $0 != 10 }) {
            last = try [UInt8(ascii: "\n")].withUnsafeBytes { try feed($0) }
        }
        guard let total else { throw SnapshotError("\(url): the snapshot stream ended before any data") }
        guard received == total else { throw SnapshotError("\(url): the snapshot stream ended after \(received) of \(total) bytes") }
        guard digest != nil else { throw SnapshotError("\(url): the snapshot stream ended without the database's sha256") }
        return last
    }

    private mutating func message(_ line: Data) throws -> Message {
        let (blob, remaining) = try Self.fastPath(line) ?? slowPath(line)
        if let total, received == total {
            guard digest == nil else { throw SnapshotError("\(url): the snapshot stream goes on after the database's sha256") }
            guard blob.count == 32 else {
                throw SnapshotError("\(url): the message after the database holds \(blob.count) bytes, not a 32-byte sha256")
            }
            digest = blob
            return .digest(blob)
        }
        // `remaining` is the server's number: summed only where it cannot overflow.
        guard remaining <= Int64.max / 2 else {
            throw SnapshotError("\(url): the snapshot stream says \(remaining) bytes remain: not a database")
        }
        if total == nil { total = Int64(blob.count) + remaining }
        received += Int64(blob.count)
        guard let total, received + remaining == total else {
            throw SnapshotError("\(url): the snapshot stream is inconsistent (\(received) bytes in, \(remaining) said to remain, \(total ?? 0) in all)")
        }
        return .data(blob)
    }

    /// The gateway's usual line, `{"result":{"blob":"...","remaining_bytes":"N"}}` (either key
    /// may be missing; base64 has no escapes), read without a JSON parser; nil for anything else.
    static func fastPath(_ line: Data) -> (Data, Int64)? {
        guard line.starts(with: Data(#"{"result":{"#.utf8)) else { return nil }
        guard let key = line.range(of: blobKey) else { return line.range(of: Data("remaining".utf8)) == nil && line.count < 64 ? (Data(), 0) : nil }
        let quote = line.withUnsafeBytes { raw -> Int? in
            let from = key.upperBound - line.startIndex
            guard let base = raw.baseAddress, from < raw.count, let found = memchr(base + from, 0x22, raw.count - from) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
        guard let quote else { return nil }
        let end = line.startIndex + quote
        guard let blob = Data(base64Encoded: line.subdata(in: key.upperBound..<end)) else { return nil }
        var remaining: Int64 = 0
        // Neither key can occur inside base64 (no quotes, no underscores): search the whole line
        // (a `Data` slice's `range(of:)` answers in the slice's own offsets on Linux).
        if let field = line.range(of: Data(#""remaining_bytes":"#.utf8)) {
            let digits = line[field.upperBound...].drop { $0 == UInt8(ascii: "\"") }.prefix { (48...57).contains($0) }
            guard let value = Int64(String(decoding: digits, as: UTF8.self)) else { return nil }
            remaining = value
        }
        return (blob, remaining)
    }

    private func slowPath(_ line: Data) throws -> (Data, Int64) {
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                throw SnapshotError("not an object")
            }
            object = parsed
        } catch {
            throw EtcdClientError(kind: .decoding, url: url, message: "snapshot stream: \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        if let failure = object["error"] as? [String: Any] {
            let text = (failure["message"] as? String) ?? (failure["error"] as? String) ?? "\(failure)"
            throw EtcdClientError(kind: .http, url: url, httpStatus: 200, message: "snapshot stream: \(text)")
        }
        guard let result = object["result"] as? [String: Any] else {
            throw EtcdClientError(kind: .decoding, url: url, message: "snapshot stream: no result in \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        guard let blob = Data(base64Encoded: (result["blob"] as? String) ?? "") else {
            throw EtcdClientError(kind: .decoding, url: url, message: "snapshot stream: a blob is not base64")
        }
        let remaining: Int64
        switch result["remaining_bytes"] {
        case let text as String: remaining = Int64(text) ?? -1
        case let number as NSNumber: remaining = number.int64Value
        case nil: remaining = 0
        default: remaining = -1
        }
        guard remaining >= 0 else { throw EtcdClientError(kind: .decoding, url: url, message: "snapshot stream: bad remaining_bytes") }
        return (blob, remaining)
    }
}
