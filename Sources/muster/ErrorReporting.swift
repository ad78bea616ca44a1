import ArgumentParser
import Foundation
import MusterInventory

/// Maps errors to muster's exit codes: 2 for bad input, 1 for a failed step.
enum ErrorReporting {
    static func exit(for error: Error) -> ExitCode {
        if error is InventoryError { return ExitCode(2) }
        return ExitCode(1)
    }

    static func report(_ error: Error) -> ExitCode {
        FileHandle.standardError.write(Data(("\(error)\n").utf8))
        return exit(for: error)
    }
}

/// Runs `body`, printing any error plainly (no usage text) and exiting with muster's code.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw ErrorReporting.report(error)
    }
}
