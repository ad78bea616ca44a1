/// How much YAML one parse may take in and build. An inventory is written by hand (or by a
/// script from a host list): the limits sit far above any real one and far below what would
/// hurt the controller, so a hostile or broken file is refused with a position instead of
/// growing the process (a 345-byte "billion laughs" document once grew `muster render` past
/// 12 GB).
public struct YAMLLimits: Sendable, Equatable {
    /// Which limit refused a document (see `YAMLSyntaxError.limit`).
    public enum Kind: Sendable, Equatable {
        case documentBytes, nodes, depth, aliasDepth, scalarBytes
    }

    /// Bytes of the whole document, checked before libyaml sees any of it. 2 MiB: a 10,000-host
    /// inventory is about 1 MiB. The text is cheap (held once); its tree is not: a node costs
    /// 90 bytes, and one with a string of more than 15 bytes about 240, so a document of nothing
    /// but short strings builds five times its size in tree. 2 MiB of those peak at 60 MiB in a
    /// debug build (35 MiB of which is the binary before it reads anything).
    public var documentBytes = 2 << 20

    /// Nodes of the tree as its readers see it: every alias counts as the whole subtree it
    /// repeats, since every reader walks that subtree again. 200,000: a 10,000-host inventory
    /// (each host with its address, fqdn and a shared ssh block) needs about 120,000, and the
    /// tree of 200,000 one-letter nodes is 18 MiB.
    public var nodes = 200_000

    /// Levels of nested collections, counting what aliases bring in. An inventory needs about
    /// six; readers recurse per level.
    public var depth = 64

    /// Aliases within anchored nodes within anchored nodes... A hand-written inventory shares a
    /// block or two (`ssh: *defaults`); a deep chain is the shape of an alias bomb.
    public var aliasDepth = 8

    /// Bytes of one scalar. 16 KiB is four times PATH_MAX and far above any name, URL list or
    /// etcd option; it keeps messages that quote a value, and the typo hints that compare it
    /// with known keys, small.
    public var scalarBytes = 16 << 10

    public init() {}

    public static let standard = YAMLLimits()
}
