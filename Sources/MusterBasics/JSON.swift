import Foundation

extension JSONEncoder {
    /// Stable output for files and documents that people diff: sorted keys, no escaped slashes.
    public static var sortedPretty: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
