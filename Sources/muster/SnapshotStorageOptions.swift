import ArgumentParser
import MusterDeploy
import MusterObjectStore

/// restic's `--keep-*` flags (`snapshot save`, `snapshot prune`).
struct RetentionOptions: ParsableArguments {
    @Option(help: "Keep the newest N snapshots (as --keep).")
    var keepLast: Int?
    @Option(help: "Keep the newest snapshot of each of the last N hours that have one.")
    var keepHourly: Int?
    @Option(help: "Keep the newest snapshot of each of the last N days that have one (UTC).")
    var keepDaily: Int?
    @Option(help: "Keep the newest snapshot of each of the last N ISO weeks that have one.")
    var keepWeekly: Int?
    @Option(help: "Keep the newest snapshot of each of the last N months that have one.")
    var keepMonthly: Int?

    var given: Bool { [keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly].contains { $0 != nil } }

    func validate() throws {
        for (name, value) in [("last", keepLast), ("hourly", keepHourly), ("daily", keepDaily), ("weekly", keepWeekly), ("monthly", keepMonthly)] {
            if let value, value < 0 { throw ValidationError("--keep-\(name) must be 0 or more") }
        }
        if given && policy(keep: nil)?.isEmpty == true { throw ValidationError("the --keep-* rules keep nothing: give one of at least 1") }
    }

    /// The policy the flags say; `keep` (the older `--keep N`) counts as `--keep-last` when given.
    func policy(keep: Int?) -> RetentionPolicy? {
        guard given || keep != nil else { return nil }
        return RetentionPolicy(last: keepLast ?? keep ?? 0, hourly: keepHourly ?? 0, daily: keepDaily ?? 0,
                               weekly: keepWeekly ?? 0, monthly: keepMonthly ?? 0)
    }
}

enum SSEMode: String, ExpressibleByArgument, CaseIterable {
    case aes256 = "AES256"
    case kms = "aws:kms"
}

/// `--sse` and `--sse-kms-key-id` for objects muster writes.
struct EncryptionOptions: ParsableArguments {
    @Option(help: "Ask S3 for server-side encryption of the snapshot object: AES256 or aws:kms.")
    var sse: SSEMode?
    @Option(help: "The KMS key for --sse aws:kms (default: the bucket's or the account's).")
    var sseKmsKeyId: String?

    func validate() throws {
        if sseKmsKeyId != nil && sse != .kms { throw ValidationError("--sse-kms-key-id needs --sse aws:kms") }
    }

    var encryption: S3Encryption? {
        switch sse {
        case .aes256: .aes256
        case .kms: .kms(keyID: sseKmsKeyId)
        case nil: nil
        }
    }
}
