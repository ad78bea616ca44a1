import Foundation
import MusterBasics
import MusterObjectStore
import MusterTestSupport
import Testing

/// muster's SigV4 against AWS's published examples and against botocore's signer on the same inputs.
struct SigV4Tests {
    static let awsExample = S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let exampleDate = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z

    /// AWS S3 docs, "Signature Calculations for the Authorization Header", example GET Object.
    @Test func awsPublishedGetObjectExample() {
        let signer = SigV4Signer(credentials: Self.awsExample, region: "us-east-1")
        let signed = signer.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt",
                                 headers: [("Range", "bytes=0-9")], payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: Self.exampleDate)
        #expect(SigV4Signer.timestamp(Self.exampleDate) == "20130524T000000Z")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// The same document's PUT Object example (a `$` in the key, a body, a storage class).
    @Test func awsPublishedPutObjectExample() {
        let signer = SigV4Signer(credentials: Self.awsExample, region: "us-east-1")
        let body = Data("Welcome to Amazon S3.".utf8)
        let signed = signer.sign(method: "PUT", host: "examplebucket.s3.amazonaws.com", path: "/test$file.text",
                                 headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                                 payloadSHA256: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", date: Self.exampleDate)
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
        #expect(signed.authorization.contains("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"))
        #expect(Digest.sha256Hex(body) == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
    }

    /// The same document's GET Bucket (List Objects) example: a sorted, encoded query.
    @Test func awsPublishedListObjectsExample() {
        let signer = SigV4Signer(credentials: Self.awsExample, region: "us-east-1")
        let signed = signer.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/",
                                 query: [("prefix", "J"), ("max-keys", "2")], payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: Self.exampleDate)
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    struct Case: Sendable, CustomStringConvertible {
        var method: String
        var path: String
        var query: [(String, String)]
        var headers: [(name: String, value: String)]
        var body: String
        var token: String?
        var description: String { "\(method) \(path)" }
    }

    static let cases: [Case] = [
        Case(method: "GET", path: "/backups/", query: [("list-type", "2"), ("prefix", "prod/a b+c"), ("continuation-token", "1/x==")], headers: [], body: "", token: nil),
        Case(method: "PUT", path: "/backups/prod/main-42-20261207T203000Z.db", query: [("partNumber", "3"), ("uploadId", "VXBsb2FkIElE~x")],
             headers: [], body: String(repeating: "etcd", count: 1000), token: nil),
        Case(method: "POST", path: "/backups/prod/odd key;$&=ü.db", query: [("uploads", "")],
             headers: [("x-amz-meta-muster-cluster", "main"), ("x-amz-server-side-encryption", "aws:kms"),
                       ("x-amz-server-side-encryption-aws-kms-key-id", "alias/muster"), ("content-type", "application/octet-stream")],
             body: "", token: "FwoGZXIvYXdzEJr//////////wEaDEXAMPLETOKEN"),
        Case(method: "HEAD", path: "/backups/main-1-20261207T000000Z.db", query: [], headers: [("x-amz-meta-note", "  two   spaces  ")], body: "", token: nil),
        Case(method: "DELETE", path: "/backups/k", query: [("uploadId", "abc")], headers: [], body: "", token: "tok"),
    ]

    /// botocore's S3SigV4Auth (the AWS CLI's signer) on the same request, time and keys.
    @Test(arguments: cases) func equalsBotocore(_ request: Case) throws {
        let credentials = S3Credentials(accessKeyID: "AKIDMUSTERTEST", secretAccessKey: "secret/with+chars=", sessionToken: request.token)
        let date = Date(timeIntervalSince1970: 1_796_675_400)
        let host = "127.0.0.1:9000"
        let payload = Digest.sha256Hex(Data(request.body.utf8))
        let signed = SigV4Signer(credentials: credentials, region: "eu-central-1")
            .sign(method: request.method, host: host, path: request.path, query: request.query, headers: request.headers,
                  payloadSHA256: payload, date: date)
        let input: [String: Any] = [
            "method": request.method, "url": "http://\(host)" + SigV4Signer.encodePath(request.path)
                + (request.query.isEmpty ? "" : "?" + request.query.map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")),
            "headers": request.headers.map { [$0.name, $0.value] }, "body": request.body, "token": request.token ?? NSNull(),
            "timestamp": SigV4Signer.timestamp(date),
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: input), as: UTF8.self)
        let botocore = try MotoServer.python(Self.botocoreSigner, [json]).trimmingCharacters(in: .whitespacesAndNewlines)
        // botocore separates the parts with ", ", AWS's examples with ","; S3 takes both.
        #expect(signed.authorization == botocore.replacingOccurrences(of: ", ", with: ","))
    }

    static let botocoreSigner = """
        import json, sys, datetime
        from unittest import mock
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        i = json.loads(sys.argv[1])
        request = AWSRequest(method=i["method"], url=i["url"], data=i["body"].encode())
        for name, value in i["headers"]:
            request.headers[name] = value
        request.headers["X-Amz-Content-SHA256"] = __import__("hashlib").sha256(i["body"].encode()).hexdigest()
        auth = S3SigV4Auth(Credentials("AKIDMUSTERTEST", "secret/with+chars=", i["token"]), "s3", "eu-central-1")
        when = datetime.datetime.strptime(i["timestamp"], "%Y%m%dT%H%M%SZ")
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(request)
        print(request.headers["Authorization"])
        """
}

