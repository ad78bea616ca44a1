/// How `S3Client.copy` splits a large copy into `UploadPartCopy` ranges.
public struct MultipartCopy: Sendable {
    /// S3's limit for one `CopyObject` (5 GiB): above it only a multipart copy works.
    public static let copyObjectLimit: Int64 = 5 << 30
    /// S3's bounds on a multipart upload's parts.
    static let minimumPartSize: Int64 = 5 << 20
    static let maximumParts: Int64 = 10_000

    /// Objects larger than this are copied in ranges.
    public var threshold: Int64
    /// Bytes per range (the last one shorter), raised as needed to stay within 10,000 parts.
    public var partSize: Int64
    /// Ranges copied side by side: S3 copies each range in its own request, so a large copy
    /// takes about its size / (partsInFlight × one request's rate). No bytes pass through muster.
    public var partsInFlight: Int

    /// The defaults: `CopyObject` up to its limit; 256 MiB ranges (a 6 GiB object in 24), ten
    /// at a time, as boto3's managed copy sends them.
    public init(threshold: Int64 = MultipartCopy.copyObjectLimit, partSize: Int64 = 256 << 20, partsInFlight: Int = 10) {
        self.threshold = threshold
        self.partSize = max(partSize, Self.minimumPartSize)
        self.partsInFlight = max(partsInFlight, 1)
    }

    /// The byte ranges (inclusive) of an object of `size`, in part order.
    public func ranges(size: Int64) -> [ClosedRange<Int64>] {
        let part = max(partSize, (size + Self.maximumParts - 1) / Self.maximumParts)
        return stride(from: Int64(0), to: size, by: Int(part)).map { $0...(min($0 + part, size) - 1) }
    }
}
