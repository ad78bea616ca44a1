import ArgumentParser
import Foundation
import MusterDeploy

struct ReplaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace",
        abstract: "Replace a member whose data is lost or whose host was rebuilt: removed, its data dir moved aside, added back as a learner, promoted.",
        discussion: "HOST is the inventory's host name, which is the member's name. The old data dir is kept beside the new one unless --wipe-data.")

    @OptionGroup var options: InventoryOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: ArgumentHelp("The member to replace (its inventory host name).", valueName: "host"),
            completion: InventoryCompletion.members)
    var member: String

    @Flag(help: "Delete the member's old data dir instead of moving it aside.")
    var wipeData = false

    @Flag(help: "Print the steps; change nothing.")
    var dryRun = false

    @Flag(help: "Skip the snapshot taken before the member is removed.")
    var noBackup = false

    func validate() throws {
        guard options.cluster != nil else { throw ValidationError("replace needs --cluster NAME") }
    }

    func run() async throws {
        try await reportingErrors {
            var replace = Replace(builder: options.builder(), member: member, options: remote.runOptions, progress: Progress())
            replace.wipeData = wipeData
            replace.dryRun = dryRun
            replace.backup = !noBackup
            if let report = try await replace.run() {
                print(report.table())
                if !report.ok { throw ExitCode(1) }
            }
        }
    }
}
