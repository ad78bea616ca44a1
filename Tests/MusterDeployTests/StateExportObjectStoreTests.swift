import Foundation
import Testing
import MusterBasics
import MusterTestSupport

/// `muster state export --out s3://...` and `import --from s3://...` against moto's S3 server on
/// loopback: boto3 downloads what muster wrote and the age command opens it; the import puts
/// back the very CA key. No host is contacted.
@Suite struct StateExportObjectStoreTests {
    @Test func aStateExportedToABucketIsAgesAndImportsBack() throws {
        try MotoServer.requireVenv()
        let directory = try TemporaryDirectory(prefix: "muster-state-s3")
        let moto = try MotoServer(logDirectory: directory.path)
        defer { moto.stop() }
        _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='muster-state')")
        let inventory = directory.path + "/site.yml"
        try Data("member: { version: 3.5.16 }\nhosts:\n  h1: { address: 10.9.0.1 }\nclusters:\n  main: { members: [h1] }\n".utf8)
            .write(to: URL(fileURLWithPath: inventory))
        func muster(_ arguments: [String]) throws -> ProcessResult {
            let environment = ProcessInfo.processInfo.environment.merging(moto.environment()) { $1 }
            return try LocalProcess.run([MusterCLI.binary] + arguments, environment: environment, timeout: 60)
        }
        #expect(try muster(["client-cert", inventory, "--name", "prometheus"]).status == 0)
        let state = directory.path + "/.muster/site"
        let caKey = try Data(contentsOf: URL(fileURLWithPath: state + "/pki/main/ca.key"))
        let key = directory.path + "/operator.key"
        #expect(try LocalProcess.run(["/usr/bin/age-keygen", "-o", key], timeout: 30).status == 0)
        let recipient = try LocalProcess.run(["/usr/bin/age-keygen", "-y", key], timeout: 30).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)

        let exported = try muster(["state", "export", inventory, "--out", "s3://muster-state/exports/site.age", "--recipient", recipient, "--sse", "AES256"])
        #expect(exported.status == 0, "\(exported.stderrText)")
        let fetched = directory.path + "/fetched.age"
        _ = try moto.python("import boto3, sys; boto3.client('s3').download_file('muster-state', 'exports/site.age', sys.argv[1])", [fetched])
        let listing = try LocalProcess.run(["/bin/sh", "-c", "age -d -i \(key) \(fetched) | tar -tf -"], timeout: 30)
        #expect(listing.stdoutText.contains("./pki/main/ca.key\n"), "\(listing.stdoutText)\(listing.stderrText)")

        try FileManager.default.removeItem(atPath: state)
        let imported = try muster(["state", "import", inventory, "--from", "s3://muster-state/exports/site.age", "--identity", key])
        #expect(imported.status == 0, "\(imported.stderrText)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: state + "/pki/main/ca.key")) == caKey)

        let prefixOnly = try muster(["state", "export", inventory, "--out", "s3://muster-state/exports/", "--recipient", recipient])
        #expect(prefixOnly.status == 2 && prefixOnly.stderrText.contains("name the object"), "\(prefixOnly.stderrText)")
        let missing = try muster(["state", "import", inventory, "--state", directory.path + "/other", "--from", "s3://muster-state/exports/none.age", "--identity", key])
        #expect(missing.status == 1 && missing.stderrText.contains("NoSuchKey"), "\(missing.stderrText)")
    }
}
