import MusterSSH

// Many sessions at once, for tests that need a fleet without MusterDeploy's `Fleet`.
extension SSH {
    /// Connects to every target, at most `parallel` handshakes at a time; results in target order.
    static func connectAll(_ targets: [SSHTarget], parallel: Int) async -> [Result<SSHSession, SSHError>] {
        initialize()
        return await boundedMap(targets, parallel: parallel) { target in
            do {
                return .success(try await SSHSession.connect(target))
            } catch let error as SSHError {
                return .failure(error)
            } catch {
                return .failure(SSHError(host: target.name, step: "connect", kind: .connect,
                                         message: "\(error)"))
            }
        }
    }
}

/// Connects to all targets (at most `parallel` at a time), runs `body` with the sessions in target
/// order, and closes them afterwards. Throws the first connect error (after closing the others).
func withSessions<R: Sendable>(
    _ targets: [SSHTarget], parallel: Int, _ body: ([SSHSession]) async throws -> R
) async throws -> R {
    let results = await SSH.connectAll(targets, parallel: parallel)
    var sessions = [SSHSession]()
    var firstError: SSHError?
    for result in results {
        switch result {
        case .success(let session): sessions.append(session)
        case .failure(let error): if firstError == nil { firstError = error }
        }
    }
    func closeAll() async { for session in sessions { await session.close() } }
    if let firstError {
        await closeAll()
        throw firstError
    }
    do {
        let value = try await body(sessions)
        await closeAll()
        return value
    } catch {
        await closeAll()
        throw error
    }
}
