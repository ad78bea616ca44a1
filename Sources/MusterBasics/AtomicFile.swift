import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct AtomicFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "cannot write \(path): \(message)" }
}

/// The one way muster writes a file it must not lose or find half-written (the state dir's
/// tokens, cluster records, keys and certificates): a temporary file of a name no other writer
/// uses, in the same directory, created with `mode` (never wider, whatever the umask), written,
/// fsynced, renamed over `path`, and the directory fsynced so that the rename itself survives a
/// crash. A reader sees the old file or the new one, never a mix, and two writers never share a
/// temporary file.
public enum AtomicFile {
    /// Writes all of `bytes` to `descriptor`, again after a short write or EINTR; the errno of
    /// a failed write, nil when all went out.
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if count < 0 {
                if errno == EINTR { continue }
                return errno
            }
            written += count
        }
        return nil
    }

    public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o600) throws(AtomicFileError) {
        let temporary = "\(path).tmp.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw AtomicFileError(path: path, message: "cannot create \(temporary): \(Self.reason())") }
        var failure: String?
        if let code = Array(bytes).withUnsafeBytes({ writeAll(descriptor, $0) }) {
            failure = "write: \(String(cString: strerror(code)))"
        }
        if failure == nil && fchmod(descriptor, mode) != 0 { failure = "fchmod: \(Self.reason())" }
        if failure == nil && fsync(descriptor) != 0 { failure = "fsync: \(Self.reason())" }
        if close(descriptor) != 0 && failure == nil { failure = "close: \(Self.reason())" }
        if failure == nil && rename(temporary, path) != 0 { failure = "rename: \(Self.reason())" }
        if let failure {
            unlink(temporary)
            throw AtomicFileError(path: path, message: failure)
        }
        try syncDirectory(of: path)
    }

    /// Removes `path` (a missing file is no error), the removal made durable like a write.
    public static func remove(_ path: String) throws(AtomicFileError) {
        guard unlink(path) == 0 else {
            if errno == ENOENT { return }
            throw AtomicFileError(path: path, message: "unlink: \(Self.reason())")
        }
        try syncDirectory(of: path)
    }

    /// fsync of the directory holding `path`: a rename or unlink is durable only then.
    private static func syncDirectory(of path: String) throws(AtomicFileError) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw AtomicFileError(path: path, message: "cannot open \(directory): \(Self.reason())") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw AtomicFileError(path: path, message: "fsync \(directory): \(Self.reason())") }
    }

    private static func reason() -> String { String(cString: strerror(errno)) }
}
