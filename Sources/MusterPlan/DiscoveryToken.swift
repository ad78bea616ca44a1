/// A discovery token muster created for a cluster, kept so `render` and `up` agree on it.
public struct DiscoveryToken: Sendable, Codable, Equatable {
    public var token: String
    /// The URL a service answered to `GET /new`; `nil` for etcd backends (derived from the token).
    public var serviceURL: String?
    /// Set once the cluster formed with this token: it is never replaced after that.
    public var formed: Bool

    public init(token: String, serviceURL: String? = nil, formed: Bool = false) {
        self.token = token
        self.serviceURL = serviceURL
        self.formed = formed
    }
}

