import MusterInventory

/// The version each cluster's members run: `member.version` where the inventory pins it, else
/// the binary's own `etcd --version`, asked once per distinct binary however many clusters
/// share it.
enum MemberVersions {
    /// The binaries to ask, each once, with the `member:` that names it (where a failure points).
    static func binariesToAsk(_ inventory: Inventory) -> [MemberSettings] {
        var seen = Set<String>()
        return inventory.clusters.compactMap { cluster in
            let member = inventory.memberSettings(of: cluster.name)
            return member.version == nil && seen.insert(member.binary).inserted ? member : nil
        }
    }

    /// Each cluster's version from the binaries' answers.
    static func assign(_ inventory: Inventory, answers: [String: String], inventoryPath: String) throws -> [String: String] {
        var versions: [String: String] = [:]
        for cluster in inventory.clusters {
            let member = inventory.memberSettings(of: cluster.name)
            guard let version = member.version ?? answers[member.binary] else { continue }
            guard MemberBinary.isValid(version) else {
                throw InventoryError.at(member.mark, in: inventoryPath, "member version '\(version)' is not MAJOR.MINOR.PATCH")
            }
            versions[cluster.name] = version
        }
        return versions
    }

    static func ask(_ inventory: Inventory, inventoryPath: String,
                    _ version: (String) async throws -> String) async throws -> [String: String] {
        var answers: [String: String] = [:]
        for binary in binariesToAsk(inventory) {
            do { answers[binary.binary] = try await version(binary.binary) } catch let error as MemberBinary.VersionError {
                throw InventoryError.at(binary.mark, in: inventoryPath, error.description)
            }
        }
        return try assign(inventory, answers: answers, inventoryPath: inventoryPath)
    }

    /// The same for synchronous callers (tests).
    static func ask(_ inventory: Inventory, inventoryPath: String,
                    _ version: (String) throws -> String) throws -> [String: String] {
        var answers: [String: String] = [:]
        for binary in binariesToAsk(inventory) {
            do { answers[binary.binary] = try version(binary.binary) } catch let error as MemberBinary.VersionError {
                throw InventoryError.at(binary.mark, in: inventoryPath, error.description)
            }
        }
        return try assign(inventory, answers: answers, inventoryPath: inventoryPath)
    }
}
