import Foundation
import MusterBasics
import MusterTestSupport
import Testing
@testable import MusterEtcd

/// `SnapshotFile.inspect` reads a snapshot's revision from its bbolt pages, whose ids are the
/// file's word: a damaged one must be refused as damaged, never crash muster (`restore --from`).
@Suite struct BoltFileTests {
    /// The database followed by its SHA-256, as etcd streams it: the digest matches, so only the
    /// pages themselves can be found damaged.
    private func snapshot(_ image: BoltImage, in directory: TemporaryDirectory) throws -> String {
        let path = directory.path + "/snapshot.db"
        let database = image.bytes
        try Data(database + Digest.sha256(database)).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The fixture itself is a bbolt file the reader understands: the damaged variants below fail
    /// on their page ids, not on the fixture.
    @Test func aWholeImageReportsItsRevision() throws {
        let directory = try TemporaryDirectory(prefix: "muster-bolt")
        let path = try snapshot(BoltImage(), in: directory)
        let facts = try SnapshotFile.inspect(path)
        #expect(facts.hashMatches)
        #expect(facts.revision == 7)
        // One pass gives both digests, as two separate hashes of the bytes do; and digests known
        // from the stream that wrote the file give the same facts without hashing it again.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let digests = SnapshotDigests(file: Digest.sha256Hex(bytes), database: Digest.hex(Digest.sha256(bytes.dropLast(32))))
        #expect(facts.fileSHA256 == digests.file && facts.databaseSHA256 == digests.database)
        #expect(try SnapshotFile.inspect(path, digests: digests) == facts)
    }

    @Test(arguments: [
        (root: UInt64(1) << 63, bucket: UInt64(3), overflow: UInt32(0)),        // the meta page's root
        (root: 2, bucket: (UInt64(1) << 63) - 1, overflow: 0),                   // a bucket's root
        (root: 2, bucket: UInt64.max, overflow: 0),
        (root: 2, bucket: UInt64(Int.max) / 4096 + 1, overflow: 0),               // fits Int, times the page size does not
        (root: 2, bucket: 3, overflow: UInt32.max),                               // a page's overflow count
    ])
    func aPageIdTheFileCannotHoldIsRefusedAsDamaged(_ damage: (root: UInt64, bucket: UInt64, overflow: UInt32)) throws {
        var image = BoltImage()
        image.rootPage = damage.root
        image.keyBucketRoot = damage.bucket
        image.keyPageOverflow = damage.overflow
        let directory = try TemporaryDirectory(prefix: "muster-bolt")
        let path = try snapshot(image, in: directory)
        do {
            let facts = try SnapshotFile.inspect(path)
            Issue.record("a damaged file was read: revision \(facts.revision)")
        } catch let error as SnapshotError {
            #expect(error.description.contains("\(path) is damaged"), "\(error)")
            #expect(error.description.contains("outside the file") || error.description.contains("runs past the end"), "\(error)")
        }
    }
}
