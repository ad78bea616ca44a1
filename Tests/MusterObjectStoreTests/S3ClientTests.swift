import Foundation
import MusterBasics
import MusterObjectStore
import MusterTestSupport
import Testing

/// The S3 client against moto's S3 server on loopback, cross-checked with boto3.
@Suite(.serialized) struct S3ClientTests {
    static func client(_ moto: MotoServer, key: String = MotoServer.accessKeyID, secret: String = MotoServer.secretAccessKey) throws -> S3Client {
        try S3Client(configuration: S3Configuration(credentials: S3Credentials(accessKeyID: key, secretAccessKey: secret),
                                                    region: "us-east-1", endpoint: moto.endpoint))
    }

    static func withMoto<T>(authenticatingAfter: Int? = nil, _ body: (MotoServer, String) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "muster-s3")
        let moto = try MotoServer(logDirectory: directory.path, authenticatingAfter: authenticatingAfter)
        defer { moto.stop() }
        return try await body(moto, directory.path)
    }

    @Test func multipartUploadListHeadGetAndDeleteAgreeWithBoto3() async throws {
        try await Self.withMoto { moto, directory in
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='muster-test')")
            let s3 = try Self.client(moto)
            let location = S3Location(bucket: "muster-test", key: "backups/main-7-20261207T000000Z.db")
            let first = Data((0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let second = Data("the last part".utf8)
            let id = try await s3.createMultipartUpload(location, metadata: ["muster-cluster": "main"], encryption: .aes256)
            let parts = [(1, try await s3.uploadPart(location, uploadID: id, number: 1, body: first)),
                         (2, try await s3.uploadPart(location, uploadID: id, number: 2, body: second))]
            try await s3.completeMultipartUpload(location, uploadID: id, parts: parts.map { (number: $0.0, etag: $0.1) })
            let whole = first + second

            let head = try await s3.headObject(location)
            #expect(head.size == Int64(whole.count))
            #expect(head.metadata["muster-cluster"] == "main")
            var streamed = Data()
            _ = try await s3.getObject(location) { streamed.append(contentsOf: $0.readableBytesView) }
            #expect(Digest.sha256Hex(streamed) == Digest.sha256Hex(whole))
            let boto = try moto.python("""
                import boto3, hashlib
                o = boto3.client('s3').get_object(Bucket='muster-test', Key='backups/main-7-20261207T000000Z.db')
                print(hashlib.sha256(o['Body'].read()).hexdigest(), o['Metadata'].get('muster-cluster'), o.get('ServerSideEncryption'))
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(boto == "\(Digest.sha256Hex(whole)) main AES256")

            // Pagination: five more small objects listed two to a page, all found, in order.
            for i in 0..<5 { try await s3.putObject(S3Location(bucket: "muster-test", key: "backups/x-\(i)"), body: Data("\(i)".utf8)) }
            let listed = try await s3.listObjects(bucket: "muster-test", prefix: "backups/", pageSize: 2)
            #expect(listed.count == 6)
            #expect(listed.map(\.key) == listed.map(\.key).sorted())

            try await s3.deleteObject(location)
            await #expect(throws: ObjectStoreError.self) { try await s3.headObject(location) }
            _ = directory
        }
    }

    /// An aborted upload leaves neither parts nor an object (boto3's view).
    @Test func anAbortedUploadLeavesNothing() async throws {
        try await Self.withMoto { moto, _ in
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='muster-test')")
            let s3 = try Self.client(moto)
            let location = S3Location(bucket: "muster-test", key: "p/k.db")
            let id = try await s3.createMultipartUpload(location)
            _ = try await s3.uploadPart(location, uploadID: id, number: 1, body: Data(repeating: 1, count: 1000))
            #expect(try await s3.listMultipartUploads(bucket: "muster-test", prefix: "p/").map(\.uploadID) == [id])
            try await s3.abortMultipartUpload(location, uploadID: id)
            let left = try moto.python("""
                import boto3
                c = boto3.client('s3')
                print(len(c.list_multipart_uploads(Bucket='muster-test').get('Uploads', [])), c.list_objects_v2(Bucket='muster-test')['KeyCount'])
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(left == "0 0")
        }
    }

    /// moto checking keys and signatures (its IAM): a wrong key and a wrong secret are refused
    /// with S3's own codes; the right ones work, so the signature itself is right.
    @Test func wrongCredentialsAreRefusedWithS3sCode() async throws {
        try await Self.withMoto(authenticatingAfter: 4) { moto, _ in
            let created = try moto.python("""
                import boto3, json
                iam = boto3.client('iam')
                iam.create_user(UserName='muster')
                key = iam.create_access_key(UserName='muster')['AccessKey']
                iam.put_user_policy(UserName='muster', PolicyName='all', PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
                boto3.client('s3').create_bucket(Bucket='muster-test')
                print(key['AccessKeyId'], key['SecretAccessKey'])
                """).split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let (key, secret) = (created[0], created[1])
            #expect(try await Self.client(moto, key: key, secret: secret).listObjects(bucket: "muster-test", prefix: "").isEmpty)
            let unknown = await #expect(throws: ObjectStoreError.self) {
                try await Self.client(moto, key: "AKIANOSUCHKEY0000000", secret: secret).listObjects(bucket: "muster-test", prefix: "")
            }
            #expect(unknown?.code == "InvalidAccessKeyId", "\(String(describing: unknown))")
            #expect(unknown?.description.contains("InvalidAccessKeyId") == true)
            let forged = await #expect(throws: ObjectStoreError.self) {
                try await Self.client(moto, key: key, secret: secret + "x").listObjects(bucket: "muster-test", prefix: "")
            }
            #expect(forged?.code == "SignatureDoesNotMatch", "\(String(describing: forged))")
            #expect(forged?.description.contains(secret) == false)
        }
    }

    @Test func anEndpointDownIsNamed() async throws {
        let port = try FreePorts.pick(1)[0]
        let s3 = try S3Client(configuration: S3Configuration(credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"),
                                                             region: "us-east-1", endpoint: "http://127.0.0.1:\(port)"))
        let error = await #expect(throws: ObjectStoreError.self) { try await s3.listObjects(bucket: "muster-test", prefix: "") }
        #expect(error?.kind == .transport)
        #expect(error?.description.contains("http://127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("connection refused") == true, "\(String(describing: error))")
    }

    /// The AWS CLI's order: environment keys over the profile files; AWS_PROFILE's section.
    @Test func credentialsRegionAndEndpointAsTheAWSCLIReadsThem() throws {
        let directory = try TemporaryDirectory(prefix: "muster-aws")
        try "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n[backup]\naws_access_key_id=BACKUPKEY\naws_secret_access_key=backupsecret\naws_session_token=tok\n"
            .write(toFile: directory.path + "/credentials", atomically: true, encoding: .utf8)
        try "[profile backup]\nregion = eu-west-3\nendpoint_url = https://s3.example.test\n"
            .write(toFile: directory.path + "/config", atomically: true, encoding: .utf8)
        let files = ["AWS_SHARED_CREDENTIALS_FILE": directory.path + "/credentials", "AWS_CONFIG_FILE": directory.path + "/config"]
        let profile = try S3Configuration.fromEnvironment(files.merging(["AWS_PROFILE": "backup"]) { $1 })
        #expect(profile.credentials.accessKeyID == "BACKUPKEY")
        #expect(profile.credentials.sessionToken == "tok")
        #expect(profile.region == "eu-west-3")
        #expect(profile.endpoint == "https://s3.example.test")
        let environment = try S3Configuration.fromEnvironment(files.merging([
            "AWS_PROFILE": "backup", "AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
            "AWS_DEFAULT_REGION": "ap-south-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9001/",
        ]) { $1 })
        #expect(environment.credentials.accessKeyID == "ENVKEY")
        #expect(environment.region == "ap-south-1")
        #expect(environment.endpoint == "http://127.0.0.1:9001")
        #expect(!"\(environment.credentials)".contains("envsecret"))
        #expect(try S3Configuration.fromEnvironment(files).credentials.accessKeyID == "DEFAULTKEY")
        #expect(throws: ObjectStoreError.self) { try S3Configuration.fromEnvironment(["AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"]) }
    }

    /// https: moto behind a certificate of a private CA for 127.0.0.1; trusted through
    /// AWS_CA_BUNDLE it answers, without it the handshake is refused (the system's roots).
    @Test func httpsWithACABundle() async throws {
        try MotoServer.requireVenv()
        let directory = try TemporaryDirectory(prefix: "muster-s3-tls")
        let (cert, key) = (directory.path + "/cert.pem", directory.path + "/key.pem")
        let made = try LocalProcess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=muster test S3",
                                         "-addext", "subjectAltName=IP:127.0.0.1"])
        #expect(made.status == 0, "\(made.stderrText)")
        let port = try FreePorts.pick(1)[0]
        let server = Process()
        server.executableURL = URL(fileURLWithPath: MotoServer.venv + "/bin/moto_server")
        server.arguments = ["-H", "127.0.0.1", "-p", String(port), "-c", cert, "-k", key]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { ChildProcesses.forceStop(server) }
        let deadline = Date().addingTimeInterval(60)
        while !FreePorts.accepts(port) && Date() < deadline && ChildProcesses.isAlive(server) { usleep(50_000) }
        let endpoint = "https://127.0.0.1:\(port)"
        let environment = ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_ENDPOINT_URL_S3": endpoint,
                           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"]
        let trusted = try S3Client(configuration: .fromEnvironment(environment.merging(["AWS_CA_BUNDLE": cert]) { $1 }))
        _ = try MotoServer.python("import boto3; boto3.client('s3', endpoint_url='\(endpoint)', verify='\(cert)', region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b').create_bucket(Bucket='muster-tls')")
        try await trusted.putObject(S3Location(bucket: "muster-tls", key: "k"), body: Data("over TLS".utf8))
        #expect(try await trusted.listObjects(bucket: "muster-tls", prefix: "").map(\.key) == ["k"])
        let untrusted = try S3Client(configuration: .fromEnvironment(environment))
        let refused = await #expect(throws: ObjectStoreError.self) { try await untrusted.listObjects(bucket: "muster-tls", prefix: "") }
        #expect(refused?.kind == .transport, "\(String(describing: refused))")
    }

    /// `--sse aws:kms --sse-kms-key-id`: the object muster copies to its final key (metadata
    /// replaced) is encrypted with that key, as boto3 reads it back.
    @Test func copyReplacesMetadataAndAsksForKMS() async throws {
        try await Self.withMoto { moto, _ in
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='muster-test')")
            let s3 = try Self.client(moto)
            let staging = S3Location(bucket: "muster-test", key: "p/.muster-partial/x.db")
            let final = S3Location(bucket: "muster-test", key: "p/main-1-20261207T000000Z.db")
            try await s3.putObject(staging, body: Data("snapshot".utf8), metadata: ["muster-cluster": "main"], encryption: .kms(keyID: "alias/muster"))
            try await s3.copyObject(from: staging, to: final, metadata: ["muster-cluster": "main", "muster-sha256": "abc"],
                                    encryption: .kms(keyID: "alias/muster"))
            let head = try moto.python("""
                import boto3
                h = boto3.client('s3').head_object(Bucket='muster-test', Key='p/main-1-20261207T000000Z.db')
                print(h.get('ServerSideEncryption'), h.get('SSEKMSKeyId'), h['Metadata'].get('muster-sha256'))
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(head == "aws:kms alias/muster abc")
        }
    }
}

/// `S3Client.copy`: one `CopyObject` up to the threshold, ranges of `UploadPartCopy` above it
/// (the threshold lowered from S3's 5 GiB to a few MiB here), as boto3 reads the result back.
@Suite(.serialized) struct S3MultipartCopyTests {
    static let bucket = "muster-test"

    @Test func aCopyOverTheThresholdGoesInRangesWithItsMetadataAndEveryByte() async throws {
        try await S3ClientTests.withMoto { moto, _ in
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='\(Self.bucket)')")
            let s3 = try S3ClientTests.client(moto)
            // 12 MiB and 3 bytes: ranges of 5, 5 and 2 MiB + 3 bytes.
            let body = Data((0..<((12 << 20) + 3)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) })
            let staging = S3Location(bucket: Self.bucket, key: "p/.muster-partial/x.db")
            try await s3.putObject(staging, body: body, metadata: ["muster-cluster": "main"])
            let ranged = S3Location(bucket: Self.bucket, key: "p/main-9-20261207T000000Z.db")
            let copy = MultipartCopy(threshold: 1 << 20, partSize: 5 << 20, partsInFlight: 2)
            #expect(copy.ranges(size: Int64(body.count)).map(\.count) == [5 << 20, 5 << 20, (2 << 20) + 3])
            try await s3.copy(from: staging, size: Int64(body.count), to: ranged, metadata: ["muster-cluster": "main", "muster-sha256": "abc"],
                              encryption: .aes256, copy: copy)
            // Under the threshold: one CopyObject (an ETag without a part count).
            let whole = S3Location(bucket: Self.bucket, key: "p/main-9-20261207T000001Z.db")
            try await s3.copy(from: staging, size: Int64(body.count), to: whole, metadata: ["muster-cluster": "main", "muster-sha256": "abc"],
                              copy: MultipartCopy(threshold: Int64(body.count), partSize: 5 << 20))
            let boto = try moto.python("""
                import boto3, hashlib
                c = boto3.client('s3')
                for key in ('p/main-9-20261207T000000Z.db', 'p/main-9-20261207T000001Z.db'):
                    o = c.get_object(Bucket='\(Self.bucket)', Key=key)
                    print(hashlib.sha256(o['Body'].read()).hexdigest(), o['ETag'].strip('"').partition('-')[2] or 'whole',
                          o['Metadata'].get('muster-sha256'), o.get('ServerSideEncryption'))
                print(len(c.list_multipart_uploads(Bucket='\(Self.bucket)').get('Uploads', [])))
                """).split(separator: "\n").map(String.init)
            let digest = Digest.sha256Hex(body)
            #expect(boto == ["\(digest) 3 abc AES256", "\(digest) whole abc None", "0"])
        }
    }

    /// A range that fails (here: its source is gone) aborts the multipart copy: no object under
    /// the destination, no upload left.
    @Test func aFailedRangeLeavesNoObjectAndNoUpload() async throws {
        try await S3ClientTests.withMoto { moto, _ in
            _ = try moto.python("import boto3; boto3.client('s3').create_bucket(Bucket='\(Self.bucket)')")
            let s3 = try S3ClientTests.client(moto)
            let missing = S3Location(bucket: Self.bucket, key: "p/.muster-partial/gone.db")
            let destination = S3Location(bucket: Self.bucket, key: "p/main-9-20261207T000000Z.db")
            await #expect(throws: ObjectStoreError.self) {
                try await s3.copy(from: missing, size: 12 << 20, to: destination, metadata: ["muster-cluster": "main"],
                                  copy: MultipartCopy(threshold: 1 << 20, partSize: 5 << 20, partsInFlight: 2))
            }
            let left = try moto.python("""
                import boto3
                c = boto3.client('s3')
                print(len(c.list_multipart_uploads(Bucket='\(Self.bucket)').get('Uploads', [])), c.list_objects_v2(Bucket='\(Self.bucket)')['KeyCount'])
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(left == "0 0")
        }
    }
}
