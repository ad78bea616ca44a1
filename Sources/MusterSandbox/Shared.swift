import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One sandbox per test process, shared by every suite that needs hosts (so tests never race for
/// subnets). The first `acquire` brings it up in its own state dir; later calls return the same
/// state; the process tears down at exit what it built.
public enum SharedSandbox {
    public static let stateDir = "/var/lib/muster/sandbox-tests"

    private final class Box: @unchecked Sendable {
        let lock = NSLock()
        var state: SandboxState?
        var built = false
        var failure: String?
    }
    private static let box = Box()

    public static func acquire(hosts: Int = 3) throws -> SandboxState {
        box.lock.lock()
        defer { box.lock.unlock() }
        if let state = box.state { return state }
        if let failure = box.failure { throw SandboxError("the shared test sandbox failed earlier: \(failure)") }
        do {
            let (state, alreadyRunning) = try Sandbox.up(hosts: hosts, stateDir: stateDir) {
                FileHandle.standardError.write(Data("[sandbox] \($0)\n".utf8))
            }
            box.state = state
            if !alreadyRunning {
                box.built = true
                atexit { SharedSandbox.downAtExit() }
            }
            return state
        } catch {
            box.failure = "\(error)"
            throw error
        }
    }

    /// Tears the shared sandbox down now (when this process built it); later `acquire`s fail.
    public static func release() {
        box.lock.lock()
        defer { box.lock.unlock() }
        guard box.built else { return }
        box.built = false
        box.state = nil
        box.failure = "released"
        try? Sandbox.down(stateDir: stateDir) { FileHandle.standardError.write(Data("[sandbox] \($0)\n".utf8)) }
    }

    static func downAtExit() { release() }
}
