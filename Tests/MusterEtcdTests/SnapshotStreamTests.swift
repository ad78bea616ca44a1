import Foundation
import MusterBasics
import Testing
@testable import MusterEtcd

/// The gateway's snapshot stream, as etcd's maintenance.go sends it: 32 KiB blobs with
/// `remaining_bytes` counting down (omitted once 0), then one blob holding the sha256.
@Suite struct SnapshotStreamTests {
    private func stream(_ database: [UInt8], digest: [UInt8]? = nil) -> Data {
        var lines: [String] = []
        var sent = 0
        while sent < database.count {
            let chunk = Array(database[sent..<min(sent + 32768, database.count)])
            sent += chunk.count
            let remaining = database.count - sent
            let field = remaining == 0 ? "" : #","remaining_bytes":"\#(remaining)""#
            lines.append(#"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"},"blob":"\#(Data(chunk).base64EncodedString())"\#(field)}}"#)
        }
        let sha = digest ?? Digest.sha256(database)
        lines.append(#"{"result":{"header":{"cluster_id":"1"},"blob":"\#(Data(sha).base64EncodedString())"}}"#)
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }

    private func parse(_ stream: Data, pieces: Int) throws -> (data: Data, digest: Data?) {
        var parser = SnapshotStreamParser(url: "test")
        var data = Data(), digest: Data?
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + pieces)
            let messages = try stream.subdata(in: offset..<end).withUnsafeBytes { try parser.feed($0) }
            for message in messages {
                switch message {
                case .data(let blob): data.append(blob)
                case .digest(let blob): digest = blob
                }
            }
            offset = end
        }
        try parser.finish()
        return (data, digest)
    }

    @Test(arguments: [1000, 4096, 65536, 1 << 20])
    func blobsAndTheDigestComeApartWhateverTheReadSizes(_ pieces: Int) throws {
        let database = (0..<(3 * 32768 + 4464)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
        let (data, digest) = try parse(stream(database), pieces: pieces)
        #expect(data == Data(database))
        #expect(digest == Data(Digest.sha256(database)))
    }

    @Test func aStreamCutShortOrWithAWrongLengthDigestIsRefused() throws {
        let database = [UInt8](repeating: 7, count: 40000)
        let whole = stream(database)
        let cut = whole.prefix(whole.count / 2)
        #expect(throws: (any Error).self) { _ = try parse(Data(cut), pieces: 4096) }
        #expect(throws: SnapshotError.self) { _ = try parse(stream(database, digest: [1, 2, 3]), pieces: 4096) }
    }

    /// `remaining_bytes` is the server's number: near 2^63 it must be refused, not overflow.
    @Test(arguments: ["9223372036854775807", "9223372036854775805"])
    func aRemainingByteCountNearTwoToThe63IsRefused(_ remaining: String) throws {
        let line = Data(#"{"result":{"blob":"AAAA","remaining_bytes":"\#(remaining)"}}"#.utf8 + [10])
        #expect(throws: SnapshotError.self) { _ = try parse(line, pieces: 100) }
    }

    @Test func anErrorInTheStreamIsTheGatewaysMessage() throws {
        let line = Data(#"{"error":{"grpc_code":9,"http_code":400,"message":"etcdserver: not capable","http_status":"Bad Request"}}"#.utf8 + [10])
        do {
            _ = try parse(line, pieces: 100)
            Issue.record("no error")
        } catch let error as EtcdClientError {
            #expect(error.message.contains("not capable"))
        }
    }

    /// `SnapshotFile.inspect` reads what `etcdctl snapshot save` writes: database + digest.
    @Test func inspectTellsADamagedFileFromAWholeOne() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-snapshot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Not a bbolt file: inspect must throw rather than report a revision.
        var bytes = [UInt8](repeating: 0, count: 4096 * 4)
        bytes += Digest.sha256(bytes)
        let path = directory.appendingPathComponent("x.db").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: SnapshotError.self) { _ = try SnapshotFile.inspect(path) }
    }
}
