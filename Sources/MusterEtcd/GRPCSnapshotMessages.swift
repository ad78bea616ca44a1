import NIOCore

/// Cuts an HTTP/2 stream's DATA into gRPC messages: each a 1-byte compressed flag, a 4-byte
/// big-endian length, then the message. Holds at most one message (and the part of the next one
/// that came with it): a length above `maximumMessage` is refused before anything is buffered.
struct GRPCMessageReader {
    /// etcd's snapshot messages carry 32 KiB blobs; grpc-go refuses more than 4 MiB by default.
    let maximumMessage: Int
    private var pending = ByteBuffer()

    init(maximumMessage: Int = 4 << 20) { self.maximumMessage = maximumMessage }

    /// Whether bytes of an unfinished message are held (the stream must not end here).
    var holdsPartialMessage: Bool { pending.readableBytes > 0 }

    /// Takes `bytes`; returns the whole messages they complete, in order.
    mutating func feed(_ bytes: inout ByteBuffer) throws -> [ByteBuffer] {
        var messages: [ByteBuffer] = []
        if pending.readableBytes == 0 {
            // The usual case: whole messages straight from the frame, no copy.
            try Self.drain(&bytes, maximumMessage: maximumMessage, into: &messages)
            if bytes.readableBytes > 0 { pending.writeBuffer(&bytes) }
            return messages
        }
        pending.writeBuffer(&bytes)
        try Self.drain(&pending, maximumMessage: maximumMessage, into: &messages)
        pending.discardReadBytes()
        return messages
    }

    private static func drain(_ buffer: inout ByteBuffer, maximumMessage: Int, into messages: inout [ByteBuffer]) throws {
        while let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self) {
            guard flag == 0 else {
                throw SnapshotError("the snapshot stream sent a compressed gRPC message (flag \(flag)); muster asked for none")
            }
            guard Int(length) <= maximumMessage else {
                throw SnapshotError("the snapshot stream announced a \(length)-byte gRPC message (at most \(maximumMessage)): not etcd's snapshot stream")
            }
            guard buffer.readableBytes >= 5 + Int(length) else { return }
            buffer.moveReaderIndex(forwardBy: 5)
            messages.append(buffer.readSlice(length: Int(length))!)
        }
    }
}

/// The fields of etcd's `SnapshotResponse` muster uses (`rpc.proto`: header = 1, remaining_bytes
/// = 2, blob = 3, version = 4 from 3.5), read by hand; every other field is skipped by its wire
/// type, as protobuf requires of an unknown field.
struct SnapshotResponseFields {
    var remainingBytes: UInt64 = 0
    /// The blob's bytes, a view into the message (no copy).
    var blob = ByteBuffer()

    init(_ message: ByteBuffer) throws {
        var reader = message
        while reader.readableBytes > 0 {
            let key = try Self.varint(&reader)
            let field = key >> 3
            switch (field, key & 7) {
            case (2, 0): remainingBytes = try Self.varint(&reader)
            case (3, 2): blob = try Self.lengthDelimited(&reader)
            case (_, 0): _ = try Self.varint(&reader)
            case (_, 1): try Self.skip(&reader, 8)
            case (_, 2): _ = try Self.lengthDelimited(&reader)
            case (_, 5): try Self.skip(&reader, 4)
            case (_, let wire): throw SnapshotError("a snapshot message's field \(field) has wire type \(wire): not etcd's SnapshotResponse")
            }
        }
    }

    private static func varint(_ reader: inout ByteBuffer) throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = reader.readInteger(as: UInt8.self) else { break }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw SnapshotError("a snapshot message holds a cut or overlong varint: not etcd's SnapshotResponse")
    }

    private static func lengthDelimited(_ reader: inout ByteBuffer) throws -> ByteBuffer {
        let length = try varint(&reader)
        guard length <= UInt64(reader.readableBytes), let slice = reader.readSlice(length: Int(length)) else {
            throw SnapshotError("a snapshot message's field runs past its end: not etcd's SnapshotResponse")
        }
        return slice
    }

    private static func skip(_ reader: inout ByteBuffer, _ count: Int) throws {
        guard reader.readableBytes >= count else {
            throw SnapshotError("a snapshot message's field runs past its end: not etcd's SnapshotResponse")
        }
        reader.moveReaderIndex(forwardBy: count)
    }
}

/// etcd's snapshot protocol, whatever carries it: the database's bytes until the first message's
/// `blob + remaining_bytes` are in (each message's count consistent with that total), then exactly
/// one message holding the 32-byte SHA-256 of all of them, then nothing.
struct SnapshotStreamAccount {
    enum Part { case database, digest }
    private(set) var total: Int64?
    private(set) var received: Int64 = 0
    private(set) var hasDigest = false

    mutating func take(blobBytes: Int, remaining: UInt64) throws -> Part {
        if let total, received == total {
            guard !hasDigest else { throw SnapshotError("the snapshot stream goes on after the database's sha256") }
            guard blobBytes == 32 else {
                throw SnapshotError("the message after the database holds \(blobBytes) bytes, not a 32-byte sha256")
            }
            hasDigest = true
            return .digest
        }
        // `remaining` is the server's number: summed only where it cannot overflow.
        guard remaining <= UInt64(Int64.max / 2) else {
            throw SnapshotError("the snapshot stream says \(remaining) bytes remain: not a database")
        }
        if total == nil { total = Int64(blobBytes) + Int64(remaining) }
        received += Int64(blobBytes)
        guard let total, received + Int64(remaining) == total else {
            throw SnapshotError("the snapshot stream is inconsistent (\(received) bytes in, \(remaining) said to remain, \(total ?? 0) in all)")
        }
        return .database
    }

    /// The stream ended: it must have brought the whole database and its digest.
    func finish() throws {
        guard let total else { throw SnapshotError("the snapshot stream ended before any data") }
        guard received == total else { throw SnapshotError("the snapshot stream ended after \(received) of \(total) bytes") }
        guard hasDigest else { throw SnapshotError("the snapshot stream ended without the database's sha256") }
    }
}
