import Foundation
import MusterBasics
import MusterEtcd
import NIOCore
import NIOHTTP1
import NIOSSL

/// What `HeadObject` (and `GetObject`'s head) says of an object.
public struct S3ObjectHead: Sendable, Equatable {
    public var size: Int64
    public var etag: String?
    /// User metadata (`x-amz-meta-NAME`), names lowercased without the prefix.
    public var metadata: [String: String]
}

/// One object of a listing.
public struct S3ListedObject: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var lastModified: String
}

/// One multipart upload in progress (`ListMultipartUploads`).
public struct S3Upload: Sendable, Equatable {
    public var key: String
    public var uploadID: String
}

/// Server-side encryption asked for on every object muster writes.
public enum S3Encryption: Sendable, Equatable {
    case aes256
    case kms(keyID: String?)

    var headers: [(name: String, value: String)] {
        switch self {
        case .aes256: return [("x-amz-server-side-encryption", "AES256")]
        case .kms(let key):
            return [("x-amz-server-side-encryption", "aws:kms")] + (key.map { [("x-amz-server-side-encryption-aws-kms-key-id", $0)] } ?? [])
        }
    }
}

/// An S3 client over the project's HTTP/1.1 client (`HTTPTransport`): every request signed with
/// SigV4 and its payload's SHA-256 (parts are held in memory while sent, so they are hashed; no
/// request is sent unsigned). Path-style addressing (`ENDPOINT/BUCKET/KEY`) on a custom endpoint,
/// virtual-hosted on AWS's own. One connection per request, as the transport makes them.
public struct S3Client: Sendable {
    public let configuration: S3Configuration
    private let tls: NIOSSLContext?

    public init(configuration: S3Configuration) throws {
        self.configuration = configuration
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        if let bundle = configuration.caBundle {
            guard FileManager.default.isReadableFile(atPath: bundle) else {
                throw ObjectStoreError(.usage, "the CA bundle \(bundle) (AWS_CA_BUNDLE or the profile's ca_bundle) cannot be read")
            }
            tlsConfiguration.trustRoots = .file(bundle)
        }
        do { tls = try NIOSSLContext(configuration: tlsConfiguration) } catch {
            throw ObjectStoreError(.usage, "cannot set up TLS for S3 (CA bundle \(configuration.caBundle ?? "the system's")): \(error)")
        }
    }

    /// The endpoint requests go to, for messages.
    public var endpointDescription: String { configuration.endpoint ?? "https://s3.\(configuration.region).amazonaws.com" }

    // MARK: operations

    public func putObject(_ location: S3Location, body: Data, metadata: [String: String] = [:], encryption: S3Encryption? = nil) async throws {
        _ = try await send(.PUT, location, headers: Self.metadataHeaders(metadata) + (encryption?.headers ?? []), body: body)
    }

    public func createMultipartUpload(_ location: S3Location, metadata: [String: String] = [:], encryption: S3Encryption? = nil) async throws -> String {
        let answer = try await send(.POST, location, query: [("uploads", "")],
                                    headers: Self.metadataHeaders(metadata) + (encryption?.headers ?? []) + [("content-type", "application/octet-stream")])
        guard let id = XMLFields(answer).value("UploadId"), !id.isEmpty else {
            throw ObjectStoreError(.answer, "\(location): CreateMultipartUpload answered without an UploadId")
        }
        return id
    }

    /// Uploads part `number` (1...10000; every part but the last at least 5 MiB) and returns its ETag.
    public func uploadPart(_ location: S3Location, uploadID: String, number: Int, body: Data) async throws -> String {
        var etag: String?
        _ = try await send(.PUT, location, query: [("partNumber", String(number)), ("uploadId", uploadID)], body: body) { head in
            etag = head.headers.first(name: "ETag")
        }
        guard let etag else { throw ObjectStoreError(.answer, "\(location): part \(number) uploaded without an ETag") }
        return etag
    }

    public func completeMultipartUpload(_ location: S3Location, uploadID: String, parts: [(number: Int, etag: String)]) async throws {
        let xml = "<CompleteMultipartUpload>" + parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(XMLFields.escape($0.etag))</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let answer = try await send(.POST, location, query: [("uploadId", uploadID)], headers: [("content-type", "application/xml")],
                                    body: Data(xml.utf8))
        // S3 may answer 200 and still fail: the error is then in the body.
        let fields = XMLFields(answer)
        if let code = fields.value("Code"), fields.blocks("Error").count > 0 {
            throw ObjectStoreError(.s3, "\(location): CompleteMultipartUpload failed: \(code): \(fields.value("Message") ?? "")", code: code, httpStatus: 200)
        }
    }

    public func abortMultipartUpload(_ location: S3Location, uploadID: String) async throws {
        _ = try await send(.DELETE, location, query: [("uploadId", uploadID)])
    }

    public func listMultipartUploads(bucket: String, prefix: String) async throws -> [S3Upload] {
        let answer = try await send(.GET, S3Location(bucket: bucket, key: ""), query: [("uploads", ""), ("prefix", prefix)])
        return XMLFields(answer).blocks("Upload").map { block in
            let fields = XMLFields(text: block)
            return S3Upload(key: fields.value("Key") ?? "", uploadID: fields.value("UploadId") ?? "")
        }
    }

    /// `ListObjectsV2` under `prefix`, every page (continuation tokens), in key order.
    public func listObjects(bucket: String, prefix: String, pageSize: Int = 1000) async throws -> [S3ListedObject] {
        var objects: [S3ListedObject] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(pageSize))]
            if let token { query.append(("continuation-token", token)) }
            let fields = XMLFields(try await send(.GET, S3Location(bucket: bucket, key: ""), query: query))
            for block in fields.blocks("Contents") {
                let object = XMLFields(text: block)
                objects.append(S3ListedObject(key: object.value("Key") ?? "", size: Int64(object.value("Size") ?? "") ?? 0,
                                              lastModified: object.value("LastModified") ?? ""))
            }
            token = fields.value("IsTruncated") == "true" ? fields.value("NextContinuationToken") : nil
        } while token != nil
        return objects
    }

    public func headObject(_ location: S3Location) async throws -> S3ObjectHead {
        var result: S3ObjectHead?
        _ = try await send(.HEAD, location) { head in result = Self.objectHead(head) }
        return result!
    }

    /// `GetObject`, its body handed to `take` chunk by chunk as it arrives.
    public func getObject(_ location: S3Location, _ take: (ByteBuffer) async throws -> Void) async throws -> S3ObjectHead {
        try await exchange(.GET, location, query: [], headers: [], body: nil, deadlineCoversBody: false) { head, body in
            guard head.status.code < 300 else { throw Self.failure(head, try await body.collect(upTo: 1 << 16), location: location, method: .GET) }
            while let chunk = try await body.next() { try await take(chunk) }
            return Self.objectHead(head)
        }
    }

    public func deleteObject(_ location: S3Location) async throws {
        _ = try await send(.DELETE, location)
    }

    /// `CopyObject` within S3 (up to 5 GiB), the copy's metadata replaced by `metadata`.
    public func copyObject(from source: S3Location, to destination: S3Location, metadata: [String: String], encryption: S3Encryption? = nil) async throws {
        let answer = try await send(.PUT, destination, headers: [("x-amz-copy-source", Self.copySource(source)), ("x-amz-metadata-directive", "REPLACE")]
                                    + Self.metadataHeaders(metadata) + (encryption?.headers ?? []))
        let fields = XMLFields(answer)
        if fields.blocks("Error").count > 0, let code = fields.value("Code") {
            throw ObjectStoreError(.s3, "\(destination): CopyObject failed: \(code): \(fields.value("Message") ?? "")", code: code, httpStatus: 200)
        }
    }

    /// `UploadPartCopy`: bytes `range` (inclusive) of `source` as part `number` of the upload;
    /// returns its ETag.
    public func uploadPartCopy(from source: S3Location, range: ClosedRange<Int64>, to destination: S3Location, uploadID: String,
                               number: Int) async throws -> String {
        let answer = try await send(.PUT, destination, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                    headers: [("x-amz-copy-source", Self.copySource(source)),
                                              ("x-amz-copy-source-range", "bytes=\(range.lowerBound)-\(range.upperBound)")])
        let fields = XMLFields(answer)
        // As with CopyObject, a 200 may carry the error in its body.
        if fields.blocks("Error").count > 0, let code = fields.value("Code") {
            throw ObjectStoreError(.s3, "\(destination): UploadPartCopy of part \(number) failed: \(code): \(fields.value("Message") ?? "")", code: code, httpStatus: 200)
        }
        guard let etag = fields.value("ETag"), !etag.isEmpty else {
            throw ObjectStoreError(.answer, "\(destination): UploadPartCopy of part \(number) answered without an ETag")
        }
        return etag
    }

    /// Copies `source` (of `size` bytes) to `destination` with `metadata` in place of its own:
    /// one `CopyObject` up to `multipartCopyThreshold`, which S3 refuses over 5 GiB; beyond it a
    /// multipart upload of `UploadPartCopy` ranges, `partsInFlight` at a time, completed only
    /// once every range is copied and aborted on any failure (Ctrl-C included), so
    /// `destination` holds the whole copy or nothing new.
    public func copy(from source: S3Location, size: Int64, to destination: S3Location, metadata: [String: String],
                     encryption: S3Encryption? = nil, copy: MultipartCopy = MultipartCopy()) async throws {
        guard size > copy.threshold else {
            return try await copyObject(from: source, to: destination, metadata: metadata, encryption: encryption)
        }
        let ranges = copy.ranges(size: size)
        let uploadID = try await createMultipartUpload(destination, metadata: metadata, encryption: encryption)
        do {
            let parts = try await withThrowingTaskGroup(of: (number: Int, etag: String).self) { group in
                var parts: [(number: Int, etag: String)] = []
                for (index, range) in ranges.enumerated() {
                    if index >= copy.partsInFlight, let done = try await group.next() { parts.append(done) }
                    try Task.checkCancellation()
                    group.addTask {
                        (index + 1, try await uploadPartCopy(from: source, range: range, to: destination, uploadID: uploadID, number: index + 1))
                    }
                }
                for try await done in group { parts.append(done) }
                return parts.sorted { $0.number < $1.number }
            }
            try await completeMultipartUpload(destination, uploadID: uploadID, parts: parts)
        } catch {
            // Every range's request has ended here (the group awaited them): none lands after the abort.
            try? await abortMultipartUpload(destination, uploadID: uploadID)
            throw error
        }
    }

    // MARK: requests

    static func copySource(_ source: S3Location) -> String {
        "/\(source.bucket)/" + SigV4Signer.encode(source.key, keepingSlash: true)
    }

    static func metadataHeaders(_ metadata: [String: String]) -> [(name: String, value: String)] {
        metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
    }

    private static func objectHead(_ head: HTTPResponseHead) -> S3ObjectHead {
        var metadata: [String: String] = [:]
        for (name, value) in head.headers where name.lowercased().hasPrefix("x-amz-meta-") {
            metadata[String(name.lowercased().dropFirst("x-amz-meta-".count))] = value
        }
        return S3ObjectHead(size: Int64(head.headers.first(name: "Content-Length") ?? "") ?? 0,
                            etag: head.headers.first(name: "ETag"), metadata: metadata)
    }

    /// The URL of `location` (its path and query encoded as signed) and the path signed.
    func url(_ location: S3Location, query: [(String, String)]) -> (url: String, path: String) {
        let path: String, base: String
        if let endpoint = configuration.endpoint {
            let components = URLComponents(string: endpoint)
            let endpointPath = components?.path ?? ""
            base = endpoint.dropLast(endpointPath.count) + ""
            path = endpointPath + "/\(location.bucket)" + (location.key.isEmpty ? "/" : "/\(location.key)")
        } else if !location.bucket.contains(".") {
            base = "https://\(location.bucket).s3.\(configuration.region).amazonaws.com"
            path = "/" + location.key
        } else {
            base = "https://s3.\(configuration.region).amazonaws.com"
            path = "/\(location.bucket)" + (location.key.isEmpty ? "/" : "/\(location.key)")
        }
        let queryText = query.map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        return (base + SigV4Signer.encodePath(path) + (queryText.isEmpty ? "" : "?" + queryText), path)
    }

    /// Sends a signed request; an answer of 300 or more is S3's error (its code from the body, or
    /// from the status for a body-less HEAD). Returns the body (up to 16 MiB).
    @discardableResult
    private func send(_ method: HTTPMethod, _ location: S3Location, query: [(String, String)] = [],
                      headers: [(name: String, value: String)] = [], body: Data? = nil,
                      head inspect: ((HTTPResponseHead) -> Void)? = nil) async throws -> Data {
        try await exchange(method, location, query: query, headers: headers, body: body, deadlineCoversBody: true) { head, answer in
            let data = try await answer.collect(upTo: 16 << 20)
            guard head.status.code < 300 else { throw Self.failure(head, data, location: location, method: method) }
            inspect?(head)
            return Data(data.readableBytesView)
        }
    }

    private func exchange<Result: Sendable>(
        _ method: HTTPMethod, _ location: S3Location, query: [(String, String)], headers: [(name: String, value: String)],
        body: Data?, deadlineCoversBody: Bool, _ handle: (HTTPResponseHead, inout HTTPTransport.Body) async throws -> Result
    ) async throws -> Result {
        let (url, path) = self.url(location, query: query)
        guard let target = HTTPTransport.Target(url) else {
            throw ObjectStoreError(.usage, "\(endpointDescription): not an http(s) URL")
        }
        let payload = body.map { Digest.sha256Hex($0) } ?? SigV4Signer.emptyPayloadSHA256
        let signed = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
            .sign(method: method.rawValue, host: target.hostHeader, path: path, query: query, headers: headers,
                  payloadSHA256: payload, date: Date())
        let request = HTTPTransport.Request(method: method, url: url, headers: signed.headers.filter { $0.name != "host" },
                                            body: body.map { ByteBuffer(bytes: $0) })
        // A part of 8 MiB over a slow uplink takes a while before S3 answers: the bound until the
        // answer's head is generous, a silent server is caught by the read timeout.
        let limits = HTTPTransport.Limits(connectTimeout: .seconds(10), deadline: .now() + .seconds(900),
                                          deadlineCoversBody: deadlineCoversBody, readTimeout: .seconds(120))
        do {
            return try await HTTPTransport.exchange(request, tls: target.isTLS ? tls : nil, limits: limits, handle)
        } catch let error as ObjectStoreError {
            throw error
        } catch {
            if error is CancellationError || (error as? HTTPTransportError) == .cancelled { throw CancellationError() }
            throw ObjectStoreError(.transport, "S3 endpoint \(endpointDescription) (\(method.rawValue) \(location)): \(HTTP.describe(error))")
        }
    }

    private static func failure(_ head: HTTPResponseHead, _ body: ByteBuffer, location: S3Location, method: HTTPMethod) -> ObjectStoreError {
        let fields = XMLFields(Data(body.readableBytesView))
        let status = Int(head.status.code)
        let code = fields.value("Code") ?? (status == 404 ? "NotFound" : status == 403 ? "Forbidden" : head.status.reasonPhrase)
        let message = fields.value("Message").map { ": \(Self.printable($0))" } ?? ""
        return ObjectStoreError(.s3, "\(location): \(method.rawValue) refused by S3 (HTTP \(status)): \(Self.printable(code))\(message)",
                                code: code, httpStatus: status)
    }

    /// The server's text, shown on a terminal: printable ASCII, at most 300 characters.
    private static func printable(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(300).map(Character.init))
    }
}
