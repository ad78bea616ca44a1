/// Builds the `Node` tree from libyaml's parse events, within `YAMLLimits`.
///
/// An alias becomes a copy of its anchored node. `Node.Value` is indirect, so the copy shares
/// the anchored subtree's storage and costs no memory; it does cost every reader a walk over
/// that subtree. So each anchored node remembers its size (nodes, as readers see them), height
/// and alias depth, and every alias is charged those before it is copied in: a bomb is refused
/// at the alias where it crosses a limit, before anything is expanded.
struct TreeBuilder {
    let limits: YAMLLimits
    private(set) var root: Node?
    /// Nodes of the tree so far, aliases counted as the subtrees they repeat.
    private(set) var produced = 0
    private var open: [Frame] = []
    private var anchors: [String: Built] = [:]

    init(limits: YAMLLimits) { self.limits = limits }

    /// A finished node and what it costs a reader.
    private struct Built {
        var node: Node
        var size: Int
        var height: Int
        var aliasDepth: Int
    }

    /// A collection whose end has not been seen yet.
    private struct Frame {
        enum Kind { case sequence, mapping }
        var kind: Kind
        var mark: Mark
        var anchor: String?
        var items: [Node] = []
        var pairs: [(key: Node, value: Node)] = []
        var pendingKey: Node?
        var size = 1
        var height = 1
        var aliasDepth = 0
    }

    /// Depth of the next node: 0 for the root.
    private var depth: Int { open.count }

    mutating func scalar(_ text: String, style: Node.ScalarStyle, tag: String?, anchor: String?, mark: Mark) throws {
        guard text.utf8.count <= limits.scalarBytes else {
            throw YAMLSyntaxError(mark: mark, limit: .scalarBytes,
                                  message: "a scalar of \(text.utf8.count) bytes; muster reads at most \(limits.scalarBytes) per value")
        }
        try checkDepth(height: 1, mark: mark)
        try charge(1, mark: mark)
        finish(Built(node: Node(.scalar(text, style), mark: mark, tag: tag), size: 1, height: 1, aliasDepth: 0),
               anchor: anchor)
    }

    mutating func alias(_ anchor: String, mark: Mark) throws {
        guard var built = anchors[anchor] else {
            throw YAMLSyntaxError(mark: mark, message: "found undefined alias '\(anchor)'")
        }
        guard built.aliasDepth < limits.aliasDepth else {
            throw YAMLSyntaxError(mark: mark, limit: .aliasDepth,
                                  message: "alias '*\(anchor)' repeats aliases more than \(limits.aliasDepth) deep; muster reads at most \(limits.aliasDepth)")
        }
        try checkDepth(height: built.height, mark: mark)
        try charge(built.size, mark: mark)
        built.aliasDepth += 1
        // The copy keeps the anchored node's content, but where it is used is the alias.
        built.node.mark = mark
        finish(built, anchor: nil)
    }

    private mutating func startCollection(_ kind: Frame.Kind, anchor: String?, mark: Mark) throws {
        try checkDepth(height: 1, mark: mark)
        try charge(1, mark: mark)
        open.append(Frame(kind: kind, mark: mark, anchor: anchor))
    }

    mutating func startSequence(anchor: String?, mark: Mark) throws {
        try startCollection(.sequence, anchor: anchor, mark: mark)
    }

    mutating func startMapping(anchor: String?, mark: Mark) throws {
        try startCollection(.mapping, anchor: anchor, mark: mark)
    }

    mutating func endCollection() {
        guard let frame = open.popLast() else { return }
        let value: Node.Value = frame.kind == .sequence ? .sequence(frame.items) : .mapping(frame.pairs)
        finish(Built(node: Node(value, mark: frame.mark), size: frame.size, height: frame.height,
                     aliasDepth: frame.aliasDepth), anchor: frame.anchor)
    }

    private func checkDepth(height: Int, mark: Mark) throws {
        guard depth + height <= limits.depth else {
            throw YAMLSyntaxError(mark: mark, limit: .depth,
                                  message: "nesting deeper than \(limits.depth) levels")
        }
    }

    private mutating func charge(_ nodes: Int, mark: Mark) throws {
        produced += nodes
        guard produced <= limits.nodes else {
            throw YAMLSyntaxError(mark: mark, limit: .nodes,
                                  message: "the document grows past \(limits.nodes) nodes here (an alias counts as all the nodes it repeats)")
        }
    }

    private mutating func finish(_ built: Built, anchor: String?) {
        // A later anchor of the same name replaces the earlier one for the aliases after it.
        if let anchor { anchors[anchor] = built }
        guard var parent = open.popLast() else {
            root = built.node
            return
        }
        parent.size += built.size
        parent.height = max(parent.height, built.height + 1)
        parent.aliasDepth = max(parent.aliasDepth, built.aliasDepth)
        switch parent.kind {
        case .sequence:
            parent.items.append(built.node)
        case .mapping:
            if let key = parent.pendingKey {
                parent.pairs.append((key, built.node))
                parent.pendingKey = nil
            } else {
                parent.pendingKey = built.node
            }
        }
        open.append(parent)
    }
}
