import Foundation

/// Why an object-store call failed. `.s3` carries S3's own error code (`InvalidAccessKeyId`,
/// `SignatureDoesNotMatch`, `NoSuchKey`, ...) and HTTP status.
public struct ObjectStoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable { case usage, credentials, transport, s3, answer, integrity }
    public var kind: Kind
    public var message: String
    public var code: String?
    public var httpStatus: Int?

    public init(_ kind: Kind, _ message: String, code: String? = nil, httpStatus: Int? = nil) {
        self.kind = kind
        self.message = message
        self.code = code
        self.httpStatus = httpStatus
    }

    public var description: String { message }
}
