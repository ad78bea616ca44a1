import ArgumentParser
import Foundation
import MusterBasics

struct Muster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster",
        abstract: "Bring etcd clusters up on hosts over SSH, render their configs, verify them.",
        version: "muster 0.2.0\ntested with etcd 3.4.23, 3.5.16",
        subcommands: [InitCommand.self, Render.self, Up.self, Verify.self, Down.self, Env.self, ClientCertCommand.self, ReplaceCommand.self,
                      SnapshotCommand.self, RestoreCommand.self, StateCommand.self, DefragCommand.self, ImportCommand.self, SandboxCommand.self,
                      DiscoveryCommand.self])
}

/// argument-parser exits 64 (EX_USAGE) for a bad command line; muster promises 2 for every
/// usage error, so parsing happens here and only the code is changed.
@main
enum Main {
    static func main() async {
        let command: ParsableCommand
        do {
            command = try Muster.parseAsRoot()
        } catch {
            exitForParse(error)
        }
        // Runs that change hosts stop at a step boundary on Ctrl-C; other commands keep the
        // default (or their own, like `discovery serve`).
        if command is Up || command is Down || command is ReplaceCommand || command is RestoreCommand || command is DefragCommand { Interruption.install() }
        // A save to S3 stops at its next part and aborts the multipart upload (no partial object).
        if let save = command as? SnapshotSaveCommand, save.out?.lowercased().hasPrefix("s3://") == true { Interruption.install() }
        do {
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                var synchronous = command
                try synchronous.run()
            }
        } catch {
            Muster.exit(withError: error)
        }
        exit(0)
    }

    private static func exitForParse(_ error: Error) -> Never {
        let code = Muster.exitCode(for: error)
        guard code != .success else { Muster.exit(withError: error) }  // --help, --version
        FileHandle.standardError.write(Data((TerminalText.escaped(Muster.fullMessage(for: error)) + "\n").utf8))
        exit(code == .validationFailure ? 2 : code.rawValue)
    }
}
