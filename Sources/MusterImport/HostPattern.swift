import MusterYAML

/// An Ansible host pattern: `name`, `name:port`, `[v6]:port`, and ranges as Ansible expands
/// them (`etcd[1:3]`, zero-padded `node[01:10]`, letters `db-[a:c]`, a step `[1:9:2]`, several
/// ranges in one name).
enum HostPattern {
    /// No inventory has this many etcd hosts; a pattern like `h[0:99999999]` is a mistake, not
    /// a reason to allocate gigabytes.
    static let maximumHosts = 10_000

    /// The pattern without its port, and the port when it carries one.
    static func splitPort(_ pattern: String, at mark: Mark) throws -> (String, String?) {
        if pattern.hasPrefix("["), let close = pattern.firstIndex(of: "]"),
           pattern[pattern.index(after: pattern.startIndex)..<close].contains(":"),
           !pattern[pattern.index(after: pattern.startIndex)..<close].contains(where: { !$0.isHexDigit && $0 != ":" && $0 != "." }) {
            // [2001:db8::1]:2222 or [2001:db8::1]
            let address = String(pattern[pattern.index(after: pattern.startIndex)..<close])
            let rest = pattern[pattern.index(after: close)...]
            if rest.isEmpty { return (address, nil) }
            guard rest.hasPrefix(":"), rest.count > 1, isDigits(rest.dropFirst()) else {
                throw ImportProblem(mark, "host '\(pattern)' is not ADDRESS, [IPv6]:PORT or NAME:PORT")
            }
            return (address, String(rest.dropFirst()))
        }
        var depth = 0
        var colons: [String.Index] = []
        for index in pattern.indices {
            switch pattern[index] {
            case "[": depth += 1
            case "]": depth -= 1
            case ":" where depth == 0: colons.append(index)
            default: break
            }
        }
        // Two or more colons outside brackets: a bare IPv6 address, which carries no port.
        guard colons.count == 1, let colon = colons.first else { return (pattern, nil) }
        let port = pattern[pattern.index(after: colon)...]
        guard !port.isEmpty, isDigits(port) else {
            throw ImportProblem(mark, "host '\(pattern)': what follows ':' must be a port number")
        }
        return (String(pattern[..<colon]), String(port))
    }

    static func isDigits(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// Every host name `pattern` stands for, in Ansible's order.
    static func expand(_ pattern: String, at mark: Mark) throws -> [String] {
        guard let open = pattern.firstIndex(of: "[") else {
            guard !pattern.contains("]") else { throw ImportProblem(mark, "host '\(pattern)' has a ']' without its '['") }
            return [pattern]
        }
        guard let close = pattern[open...].firstIndex(of: "]") else {
            throw ImportProblem(mark, "host '\(pattern)' opens a range with '[' and never closes it")
        }
        let head = pattern[..<open]
        let body = pattern[pattern.index(after: open)..<close]
        let tail = String(pattern[pattern.index(after: close)...])
        let items = try rangeItems(String(body), in: pattern, at: mark)
        var names: [String] = []
        for item in items {
            for name in try expand(String(head) + item + tail, at: mark) {
                names.append(name)
                guard names.count <= maximumHosts else {
                    throw ImportProblem(mark, "host '\(pattern)' stands for more than \(maximumHosts) hosts")
                }
            }
        }
        return names
    }

    /// `BEGIN:END[:STEP]` as Ansible reads it: one letter to one letter, or numbers (a begin
    /// with a leading zero fixes the width, and the end must have that width).
    private static func rangeItems(_ body: String, in pattern: String, at mark: Mark) throws -> [String] {
        let bounds = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard bounds.count == 2 || bounds.count == 3 else {
            throw ImportProblem(mark, "host '\(pattern)': a range is [BEGIN:END] or [BEGIN:END:STEP], found [\(body)]")
        }
        let begin = bounds[0].isEmpty ? "0" : bounds[0]
        let end = bounds[1]
        guard !end.isEmpty else { throw ImportProblem(mark, "host '\(pattern)': the range [\(body)] has no end") }
        var step = 1
        if bounds.count == 3 {
            guard let value = Int(bounds[2]), value > 0 else {
                throw ImportProblem(mark, "host '\(pattern)': the step of [\(body)] must be a whole number above 0")
            }
            step = value
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if begin.count == 1, end.count == 1, let first = letters.firstIndex(of: begin.first!),
           let last = letters.firstIndex(of: end.first!) {
            guard first <= last else { throw ImportProblem(mark, "host '\(pattern)': the range [\(body)] begins after it ends") }
            return stride(from: first, through: last, by: step).map { String(letters[$0]) }
        }
        guard isDigits(begin), isDigits(end),
              let low = Int(begin), let high = Int(end) else {
            throw ImportProblem(mark, "host '\(pattern)': the range [\(body)] is neither numbers nor single letters")
        }
        let width = begin.hasPrefix("0") && begin.count > 1 ? begin.count : 0
        if width > 0, end.count != width {
            throw ImportProblem(mark, "host '\(pattern)': the range [\(body)] must give begin and end with the same number of digits")
        }
        guard low <= high else { throw ImportProblem(mark, "host '\(pattern)': the range [\(body)] begins after it ends") }
        guard (high - low) / step < maximumHosts else {
            throw ImportProblem(mark, "host '\(pattern)' stands for more than \(maximumHosts) hosts")
        }
        return stride(from: low, through: high, by: step).map { number in
            let digits = String(number)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
    }
}
