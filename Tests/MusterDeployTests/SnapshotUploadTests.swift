import Foundation
import Testing
import MusterBasics
@testable import MusterDeploy
import MusterObjectStore
import MusterTestSupport

/// The multipart upload a snapshot streams into, against moto on loopback with a gate before
/// moto that holds each `UploadPart` request until one more than the bound arrives (or 20 s):
/// what the server sees side by side is what the client keeps on its way, whatever the speed.
@Suite(.serialized) struct SnapshotUploadTests {
    static let bucket = "muster-test"

    /// Five whole parts and a tail, at most two on their way: the server holds two together
    /// (they are sent side by side) and never three (the bound holds while two hang); the
    /// object is every byte in order.
    @Test func partsGoUpSideBySideAndNeverMoreThanTheBound() async throws {
        let directory = try TemporaryDirectory(prefix: "muster-upload")
        let moto = try MotoServer(logDirectory: directory.path, holdingPartsUntil: 3)
        defer { moto.stop() }
        _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='\(Self.bucket)')")
        let client = try S3Client(configuration: S3Configuration(
            credentials: S3Credentials(accessKeyID: MotoServer.accessKeyID, secretAccessKey: MotoServer.secretAccessKey),
            region: "us-east-1", endpoint: moto.endpoint))
        let location = S3Location(bucket: Self.bucket, key: "p/.muster-partial/main.db")
        let upload = try await SnapshotUpload.start(client, at: location, metadata: ["muster-cluster": "main"], encryption: nil,
                                                    localPath: directory.path + "/main.partial", partsInFlight: 2)
        var whole = Data()
        // Chunks of 3 MiB as a stream brings them: parts are cut across chunk boundaries.
        for chunk in 0..<14 {
            let data = Data(repeating: UInt8(chunk), count: 3 << 20)
            whole.append(data)
            try await upload.write(data)
        }
        try await upload.finish()
        #expect(moto.partsInFlight() == 2)
        let boto = try moto.python("""
            import boto3, hashlib
            o = boto3.client('s3').get_object(Bucket='\(Self.bucket)', Key='p/.muster-partial/main.db')
            print(hashlib.sha256(o['Body'].read()).hexdigest(), o['ETag'].strip('"').partition('-')[2])
            """).trimmingCharacters(in: .whitespacesAndNewlines)
        // 42 MiB: five parts of 8 MiB and one of 2.
        #expect(boto == "\(Digest.sha256Hex(whole)) 6")
        #expect(Digest.sha256Hex(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/main.partial"))) == Digest.sha256Hex(whole))
    }
}
