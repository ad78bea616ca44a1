import ArgumentParser
import Foundation
import MusterBasics
import MusterInventory

/// Shell completion of `--cluster` and `--member` from the inventory named on the same command
/// line: the first word that names a readable inventory file. Only parses the file (no binary
/// asked, no state, no host); anything that does not load completes to nothing.
enum InventoryCompletion {
    static let clusters = CompletionKind.custom { words, _, prefix in
        guard let inventory = inventory(in: words) else { return [] }
        return inventory.clusters.map(\.name).filter { $0.hasPrefix(prefix) }
    }

    /// The members of the `--cluster` named on the line, else of every cluster.
    static let members = CompletionKind.custom { words, _, prefix in
        guard let inventory = inventory(in: words) else { return [] }
        let named = zip(words, words.dropFirst()).first { $0.0 == "--cluster" }?.1
            ?? words.first { $0.hasPrefix("--cluster=") }.map { String($0.dropFirst("--cluster=".count)) }
        let clusters = inventory.clusters.filter { named == nil || $0.name == named }
        return clusters.flatMap(\.members).uniqued().filter { $0.hasPrefix(prefix) }
    }

    private static func inventory(in words: [String]) -> Inventory? {
        for word in words.dropFirst() where !word.hasPrefix("-") && (word.hasSuffix(".yml") || word.hasSuffix(".yaml")) {
            if let inventory = try? InventoryLoader.load(path: NSString(string: word).expandingTildeInPath) {
                return inventory
            }
        }
        return nil
    }
}
