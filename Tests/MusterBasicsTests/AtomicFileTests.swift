import Foundation
import Testing
import MusterBasics

/// `AtomicFile`, the one writer of state files: writers of one path never share a temporary
/// file, a reader sees one writer's bytes whole, and nothing is left beside the file.
@Suite struct AtomicFileTests {
    private func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-atomic-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func concurrentWritersOfOnePathEachSucceedAndLeaveOneWholeFile() async throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/state.json"
        let contents = (0..<16).map { writer in [UInt8](repeating: UInt8(65 + writer), count: 256 << 10) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for bytes in contents {
                group.addTask { for _ in 0..<8 { try AtomicFile.write(bytes, to: path, mode: 0o600) } }
            }
            try await group.waitForAll()
        }
        let final = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(contents.contains(final), "a mix of writers: \(final.count) bytes")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["state.json"])
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func aFailedWriteLeavesTheOldFileAndNoTemporary() throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/state.json"
        try AtomicFile.write(Array("old".utf8), to: path)
        // A directory where the file should go: the rename fails, the old file stays as it was.
        let blocked = root + "/blocked"
        try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
        #expect(throws: AtomicFileError.self) { try AtomicFile.write(Array("new".utf8), to: blocked) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "old")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["blocked", "state.json"])
    }
}
