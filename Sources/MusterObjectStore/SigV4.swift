import Foundation
import MusterBasics

/// AWS Signature Version 4 for S3 (`AWS4-HMAC-SHA256`), as AWS's "Signature Calculations for the
/// Authorization Header" describes it: a canonical request (method, the path's segments
/// URI-encoded once, the sorted query, the signed headers lowercased and trimmed, the payload's
/// SHA-256), a string to sign over its hash, and a key derived from the secret per day, region
/// and service. Pure: the time and every input are arguments, so tests compare it with botocore's.
public struct SigV4Signer: Sendable {
    public var credentials: S3Credentials
    public var region: String
    public var service = "s3"

    public init(credentials: S3Credentials, region: String) {
        self.credentials = credentials
        self.region = region
    }

    /// The payload hash of a request without a body.
    public static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public struct Signed: Sendable, Equatable {
        /// The headers to send, `Authorization` included (`host` too: the transport sets its own
        /// `Host`, which equals it, so callers drop this one).
        public var headers: [(name: String, value: String)]
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String

        public static func == (a: Signed, b: Signed) -> Bool {
            a.authorization == b.authorization && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
        }
    }

    /// Signs a request. `path` is the request's path as not yet encoded (`/bucket/key name`);
    /// `query` is the decoded query items; `headers` are the headers to sign besides `host`,
    /// `x-amz-date`, `x-amz-content-sha256` and `x-amz-security-token`, which this adds.
    public func sign(method: String, host: String, path: String, query: [(String, String)] = [],
                     headers: [(name: String, value: String)] = [], payloadSHA256: String, date: Date) -> Signed {
        let amzDate = Self.timestamp(date)
        let day = String(amzDate.prefix(8))
        var all: [(name: String, value: String)] = [("host", host)] + headers
        all.append(("x-amz-content-sha256", payloadSHA256))
        all.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        // Lowercased names, values trimmed with inner runs of spaces made one, one line per name
        // (values of a repeated name joined by commas), sorted by name.
        var merged: [String: [String]] = [:]
        for header in all {
            let value = header.value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            merged[header.name.lowercased(), default: []].append(value)
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let encodedQuery: [(name: String, value: String)] = query.map { (Self.encode($0.0), Self.encode($0.1)) }
        let sortedQuery = encodedQuery.sorted { (a, b) -> Bool in a.name == b.name ? a.value < b.value : a.name < b.name }
        let canonicalQuery = sortedQuery.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let canonicalRequest = [method, Self.encodePath(path), canonicalQuery, canonicalHeaders, signedHeaders, payloadSHA256]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Digest.sha256Hex(Data(canonicalRequest.utf8))].joined(separator: "\n")
        var key = Data("AWS4\(credentials.secretAccessKey)".utf8)
        for part in [day, region, service, "aws4_request"] { key = Digest.hmacSHA256(key: key, message: Data(part.utf8)) }
        let signature = Digest.hex(Digest.hmacSHA256(key: key, message: Data(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
        return Signed(headers: all + [("Authorization", authorization)], canonicalRequest: canonicalRequest,
                      stringToSign: stringToSign, signature: signature, authorization: authorization)
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    public static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, every other byte `%XX`.
    public static func encode(_ text: String, keepingSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepingSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// S3's canonical URI: each segment encoded once, slashes kept (no normalization: a key may
    /// hold `//` or `.`).
    public static func encodePath(_ path: String) -> String {
        path.isEmpty ? "/" : encode(path, keepingSlash: true)
    }
}
