#if canImport(Glibc)
import Glibc
#endif

public enum IPAddress {
    /// True for an IPv4 or IPv6 literal (what etcd's listen URLs and certificate IP SANs take).
    public static func isLiteral(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
