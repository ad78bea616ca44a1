import Foundation

/// The one reading of a URL's host part that every module shares: planner (SRV targets),
/// certificates (SANs) and the address guard must agree on it.
public enum URLParts {
    /// `https://[::1]:2379/x` gives `::1`; `http://etcd1.example:2380` gives `etcd1.example`;
    /// text that is no URL comes back as it is.
    public static func host(of url: String) -> String {
        guard let host = URLComponents(string: url)?.host, !host.isEmpty else { return url }
        return host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }

    /// An address as it goes inside a URL: IPv6 literals need brackets.
    public static func urlHost(_ address: String) -> String {
        address.contains(":") ? "[\(address)]" : address
    }

    public static func trimmingSlashes(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    public func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
