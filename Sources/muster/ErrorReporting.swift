import ArgumentParser
import Foundation
import MusterBasics
import MusterEtcd
import MusterInventory
import MusterPKI
import MusterPlan
import MusterWorkspace

/// Maps every error to its kind, and the kind to muster's exit code (README: 0 success, 1 a
/// step, check or safety rule failed, 2 bad input or usage, 130/143 interrupted).
enum ErrorReporting {
    static func kind(of error: Error) -> FailureKind {
        switch error {
        case let classified as ClassifiedError: return classified.kind
        case is InventoryError, is TemplateError, is PlanError, is MemberBinary.VersionError: return .input
        case is ValidationError: return .usage
        default: return .host
        }
    }

    /// Prints `error` once: a line on stderr, and with `--output json` also a document on stdout.
    static func report(_ error: Error, json: Bool) -> ExitCode {
        let kind = kind(of: error)
        FileHandle.standardError.write(Data((TerminalText.escaped("\(error)") + "\n").utf8))
        if json {
            let classified = error as? ClassifiedError
            let document = JSONValue.object(["error": .object([
                "kind": .string(kind.rawValue),
                "cluster": classified?.cluster.map(JSONValue.string) ?? .null,
                "host": classified?.host.map(JSONValue.string) ?? .null,
                "step": classified?.step.map(JSONValue.string) ?? .null,
                "message": .string(classified?.message ?? "\(error)"),
            ])])
            print(document.serialized(), terminator: "")
        }
        return ExitCode(kind == .interrupted ? Interruption.exitCode : kind.exitCode)
    }
}

/// Runs `body`, printing any error plainly (no usage text) and exiting with muster's code.
func reportingErrors<T>(json: Bool = false, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw ErrorReporting.report(error, json: json)
    }
}
