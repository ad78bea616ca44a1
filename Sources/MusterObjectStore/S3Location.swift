import Foundation

/// `s3://BUCKET[/PREFIX]` or `s3://BUCKET/KEY`: a bucket and a key or key prefix (no leading slash).
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public var bucket: String
    public var key: String

    public init(bucket: String, key: String) {
        self.bucket = bucket
        self.key = key
    }

    /// Nil when `text` does not start with `s3://`; throws for an s3 URL that names no valid bucket.
    public static func parse(_ text: String) throws -> S3Location? {
        guard text.lowercased().hasPrefix("s3://") else { return nil }
        let rest = text.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        var key = String(rest.dropFirst(bucket.count))
        while key.hasPrefix("/") { key.removeFirst() }
        // S3's bucket names: 3 to 63 of lowercase letters, digits, dots and hyphens.
        guard (3...63).contains(bucket.count),
              bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "." || $0 == "-") }) else {
            throw ObjectStoreError(.usage, "\(text): not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
        }
        guard !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ObjectStoreError(.usage, "\(text): a key holds a control character")
        }
        return S3Location(bucket: bucket, key: key)
    }

    /// The prefix with its trailing slash (`backups/`), empty for the bucket's top.
    public var directoryPrefix: String { key.isEmpty || key.hasSuffix("/") ? key : key + "/" }

    public func appending(_ name: String) -> S3Location { S3Location(bucket: bucket, key: directoryPrefix + name) }

    public var description: String { key.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(key)" }
}
