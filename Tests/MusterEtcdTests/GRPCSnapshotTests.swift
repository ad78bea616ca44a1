import Foundation
import MusterBasics
import MusterPKI
import MusterTestSupport
import NIOCore
import NIOHPACK
import Testing
@testable import MusterEtcd
#if canImport(Glibc)
import Glibc
#endif

/// etcd's `Maintenance.Snapshot` over gRPC against a real etcd 3.5.16 member on 127.0.0.1 with
/// TLS and client-cert-auth (MusterPKI's certificates), compared with what etcdctl saves.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GRPCSnapshotTests {
    static let etcd = "/var/cache/muster/etcd-3.5/usr/bin/etcd"
    static let etcdutl = "/var/cache/muster/etcd-3.5/usr/bin/etcdutl"
    static let etcdctl = "/var/cache/muster/etcd-sid/usr/bin/etcdctl"

    /// A TLS member holding a few MiB in values larger than one 32 KiB blob, so the database
    /// spans many messages and several HTTP/2 windows.
    private final class Member: @unchecked Sendable {
        let directory: TemporaryDirectory
        let etcd: LoopbackEtcd
        /// nil: plain http (etcd serves gRPC there as cleartext HTTP/2).
        let tls: EtcdTLS?
        var etcdctl: [String] {
            [GRPCSnapshotTests.etcdctl, "--endpoints=\(etcd.clientURL)", "--dial-timeout=3s", "--command-timeout=20s"]
                + (tls.map { ["--cacert", $0.caPath, "--cert", $0.certPath, "--key", $0.keyPath] } ?? [])
        }

        init(tls useTLS: Bool = true) async throws {
            for path in [GRPCSnapshotTests.etcd, GRPCSnapshotTests.etcdutl, GRPCSnapshotTests.etcdctl] {
                try LoopbackEtcd.requireBinary(path, install: "scripts/setup.sh fetches etcd 3.5 and etcdctl")
            }
            directory = try TemporaryDirectory(prefix: "muster-grpc-snapshot")
            let pki = try ClusterPKI(stateDirectory: directory.path, cluster: "snap")
            let member = try pki.memberCertificates(member: "m1", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
            let client = try pki.clientCertificate()
            tls = useTLS ? EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath) : nil
            etcd = try LoopbackEtcd(
                binary: GRPCSnapshotTests.etcd, name: "m1", root: directory.path,
                tls: !useTLS ? nil : EtcdMemberTLS(caPath: member.caPath, certPath: member.server.certPath, keyPath: member.server.keyPath,
                                   peerCertPath: member.peer.certPath, peerKeyPath: member.peer.keyPath,
                                   peerCAPath: pki.peerAuthority.certificatePath),
                enableV2: false)
            let deadline = Date().addingTimeInterval(30)
            while true {
                if try LocalProcess.run(etcdctl + ["endpoint", "health"], timeout: 15).succeeded { break }
                guard Date() < deadline else { throw HarnessError(description: "etcd never became healthy: \(etcd.logTail())") }
                try await Task.sleep(for: .milliseconds(200))
            }
            var generator = SystemRandomNumberGenerator()
            for key in 0..<6 {
                let value = Data((0..<(600 << 10)).map { _ in UInt8.random(in: 0x21...0x7E, using: &generator) })
                let put = try LocalProcess.run(etcdctl + ["put", "big/\(key)"], input: value, timeout: 30)
                guard put.succeeded else { throw HarnessError(description: "put failed: \(put.stderrText)") }
            }
        }

        deinit { etcd.stop() }

        /// `etcdctl snapshot save`'s file.
        func etcdctlSnapshot(_ name: String) throws -> String {
            let path = directory.path + "/" + name
            let saved = try LocalProcess.run(etcdctl + ["snapshot", "save", path], timeout: 60)
            guard saved.succeeded else { throw HarnessError(description: "etcdctl snapshot save: \(saved.stderrText)") }
            return path
        }
    }

    /// Not byte for byte: etcd commits its backend before each snapshot, so two snapshots of an
    /// idle member differ in bbolt's meta and a few rewritten pages. The same keys, revision and
    /// size as etcdctl's (etcdutl's `status`: a hash over every key and value), the digest etcd
    /// sent, and etcd's own restore taking the file with its digest checked.
    @Test func theSnapshotHoldsWhatEtcdctlSavesAndRestores() async throws {
        let member = try await Member()
        let reference = try member.etcdctlSnapshot("etcdctl.db")
        let path = member.directory.path + "/muster.db"
        let download = try await EtcdClient(baseURL: member.etcd.clientURL, timeout: 5, tls: member.tls)
            .saveSnapshotOverGRPC(to: path, within: 60)
        let status = { (file: String) throws -> String in
            let result = try LocalProcess.run([Self.etcdutl, "snapshot", "status", file, "-w", "json"], timeout: 60)
            guard result.succeeded else { throw HarnessError(description: "etcdutl snapshot status \(file): \(result.stderrText)") }
            return result.stdoutText
        }
        let ours = try status(path), theirs = try status(reference)
        #expect(ours == theirs && ours.contains(#""totalKey":"#), "muster's \(ours) etcdctl's \(theirs)")
        let facts = try SnapshotFile.inspect(path), referenceFacts = try SnapshotFile.inspect(reference)
        #expect(facts.size > 3 << 20 && facts.size == referenceFacts.size)
        #expect(facts.hashMatches && download.databaseSHA256 == facts.databaseSHA256 && download.bytes == facts.size)
        var mode = stat()
        #expect(stat(path, &mode) == 0 && mode.st_mode & 0o777 == 0o600)
        // etcd's own restore takes it, digest checked (no --skip-hash-check).
        let restored = try LocalProcess.run([Self.etcdutl, "snapshot", "restore", path, "--data-dir", member.directory.path + "/restored"], timeout: 60)
        #expect(restored.succeeded, "\(restored.stderrText)")
    }

    /// An http member: the same call over cleartext HTTP/2 (prior knowledge, as etcdctl dials it).
    @Test func aPlainHTTPMemberAnswersOverCleartextHTTP2() async throws {
        let member = try await Member(tls: false)
        #expect(member.etcd.clientURL.hasPrefix("http://"))
        let path = member.directory.path + "/plain.db"
        let download = try await EtcdClient(baseURL: member.etcd.clientURL, timeout: 5).saveSnapshotOverGRPC(to: path, within: 60)
        let facts = try SnapshotFile.inspect(path)
        #expect(facts.size > 3 << 20 && facts.hashMatches && download.databaseSHA256 == facts.databaseSHA256)
    }

    /// The connection cut part way through the database (TLS and all: a plain TCP relay that
    /// stops after 1 MiB towards muster): refused, and no partial file stays.
    @Test func aStreamCutPartWayIsRefusedAndLeavesNoFile() async throws {
        let member = try await Member()
        let relay = try CuttingRelay(to: member.etcd.clientPort, cutAfter: 1 << 20)
        defer { relay.stop() }
        let path = member.directory.path + "/cut.db"
        do {
            _ = try await EtcdClient(baseURL: "https://127.0.0.1:\(relay.port)", timeout: 5, tls: member.tls)
                .saveSnapshotOverGRPC(to: path, within: 60)
            Issue.record("a snapshot cut after 1 MiB was saved")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(relay.port)") && !"\(error)".contains("timed out"), "\(error)")
        }
        #expect(relay.relayed >= 1 << 20, "the relay passed only \(relay.relayed) bytes: the cut came before the database")
        #expect(!FileManager.default.fileExists(atPath: path), "the partial file stayed")
    }

    /// etcd's own snapshot, sent as etcd's messages (32 KiB blobs, `remaining_bytes` counting
    /// down, then the digest) in frames of several sizes: taken whole as it is, and refused with
    /// one bit of its digest or of its database changed, or without its trailers (cut).
    @Test func aDamagedDigestOrDatabaseOrAMissingStatusIsRefused() async throws {
        let member = try await Member()
        let file = try Data(contentsOf: URL(fileURLWithPath: try member.etcdctlSnapshot("reference.db")))
        let database = file.prefix(file.count - 32), digest = file.suffix(32)

        let whole = try await receive(database, digest, frames: 16384)
        #expect(whole == file)
        _ = try await receive(database, digest, frames: 1000)

        var badDigest = Data(digest)
        badDigest[badDigest.startIndex + 31] ^= 1
        await #expect(throws: SnapshotError.self) { _ = try await receive(database, badDigest, frames: 16384) }
        var badDatabase = Data(database)
        badDatabase[badDatabase.startIndex + badDatabase.count / 2] ^= 0x10
        let damaged = await #expect(throws: SnapshotError.self) { _ = try await receive(badDatabase, digest, frames: 16384) }
        #expect(damaged?.description.contains("damaged in transit") == true, "\(String(describing: damaged))")
        let cut = await #expect(throws: SnapshotError.self) { _ = try await receive(database, digest, frames: 16384, trailers: false) }
        #expect(cut?.description.contains("without its gRPC status") == true, "\(String(describing: cut))")
        let short = await #expect(throws: SnapshotError.self) { _ = try await receive(database.prefix(40000), nil, frames: 16384) }
        #expect(short?.description.contains("without the database's sha256") == true, "\(String(describing: short))")
    }

    /// Feeds `database` and `digest` as etcd's SnapshotResponse messages, cut into DATA frames of
    /// `frames` bytes, to the receiver; returns what it handed on.
    private func receive(_ database: Data, _ digest: Data?, frames: Int, trailers: Bool = true) async throws -> Data {
        var messages = Data()
        func message(_ blob: Data, remaining: Int) {
            var body = Data([0x0A, 0x04, 0x08, 0x01, 0x10, 0x02])  // header {cluster_id: 1, member_id: 2}: skipped
            if remaining > 0 { body.append(0x10); body.append(contentsOf: varint(UInt64(remaining))) }
            body.append(0x1A); body.append(contentsOf: varint(UInt64(blob.count))); body.append(blob)
            body.append(contentsOf: [0x22, 0x05] + Array("3.5.0".utf8))  // version: skipped
            messages.append(0)
            withUnsafeBytes(of: UInt32(body.count).bigEndian) { messages.append(contentsOf: $0) }
            messages.append(body)
        }
        var offset = database.startIndex
        while offset < database.endIndex {
            let end = min(offset + 32768, database.endIndex)
            message(database[offset..<end], remaining: database.endIndex - end)
            offset = end
        }
        if let digest { message(digest, remaining: 0) }

        var received = Data()
        var receiver = GRPCSnapshotReceiver(url: "test")
        try receiver.headers([":status": "200", "content-type": "application/grpc"], endStream: false)
        var sent = messages.startIndex
        while sent < messages.endIndex {
            let end = min(sent + frames, messages.endIndex)
            var frame = ByteBuffer(bytes: messages[sent..<end])
            try await receiver.data(&frame) { received.append($0) }
            sent = end
        }
        if trailers { try receiver.headers(["grpc-status": "0"], endStream: true) }
        let digests = try await receiver.finish { received.append($0) }
        #expect(digests == SnapshotDigests(file: Digest.hex(Digest.sha256([UInt8](received))), database: Digest.hex(Digest.sha256([UInt8](database)))))
        return received
    }

    private func varint(_ value: UInt64) -> [UInt8] {
        var value = value, bytes: [UInt8] = []
        repeat {
            bytes.append(UInt8(value & 0x7F) | (value > 0x7F ? 0x80 : 0))
            value >>= 7
        } while value > 0
        return bytes
    }
}

/// A TCP relay on 127.0.0.1 to a local port that closes both sides once `cutAfter` bytes have
/// gone back to the client: a connection lost part way, below TLS.
private final class CuttingRelay: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let counted = NSLock()
    private var count = 0
    var relayed: Int { counted.withLock { count } }

    init(to target: Int, cutAfter limit: Int) throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = listening
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listening, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listening, 4) == 0 else { throw HarnessError(description: "relay: cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listening, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            let client = accept(listening, nil, nil)
            guard client >= 0 else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = UInt16(target).bigEndian
            to.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected == 0 {
                let upstream = DispatchSemaphore(value: 0)
                Thread.detachNewThread {
                    Self.pump(from: client, to: server, limit: .max) { _ in }
                    upstream.signal()
                }
                Self.pump(from: server, to: client, limit: limit) { sent in self.counted.withLock { self.count += sent } }
                shutdown(client, Int32(SHUT_RDWR))
                shutdown(server, Int32(SHUT_RDWR))
                upstream.wait()
            }
            close(client)
            close(server)
        }
    }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    private static func pump(from source: Int32, to sink: Int32, limit: Int, counted: (Int) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        var total = 0
        while total < limit {
            let got = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress!, min($0.count, limit - total)) }
            guard got > 0 else { return }
            let wrote = buffer.withUnsafeBytes { AtomicFile.writeAll(sink, UnsafeRawBufferPointer(rebasing: $0.prefix(got))) }
            guard wrote == nil else { return }
            total += got
            counted(got)
        }
    }
}
