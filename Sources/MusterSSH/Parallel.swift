import Foundation

extension SSH {
    /// Calls `body` for every item, at most `parallel` at a time; results in input order.
    public static func boundedMap<T: Sendable, R: Sendable>(
        _ items: [T], parallel: Int, _ body: @escaping @Sendable (T) async -> R
    ) async -> [R] {
        await withTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            var next = 0
            let cap = max(1, parallel)
            while next < min(cap, items.count) {
                let index = next
                group.addTask { (index, await body(items[index])) }
                next += 1
            }
            while let (index, result) = await group.next() {
                results[index] = result
                if next < items.count {
                    let index = next
                    group.addTask { (index, await body(items[index])) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }

    /// Connects to every target, at most `parallel` handshakes at a time; results in target order.
    public static func connectAll(_ targets: [SSHTarget], parallel: Int) async -> [Result<SSHSession, SSHError>] {
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
public func withSessions<R: Sendable>(
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
