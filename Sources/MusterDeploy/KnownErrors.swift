/// etcd's own log lines for failures an operator meets at bootstrap, with what they mean
/// (checked by hand; see ../shared/reference/etcd-facts.md).
enum KnownErrors {
    static let causes: [(line: String, cause: String)] = [
        ("discovery token was already used", "the discovery token was used before, or its size key is missing: muster makes a fresh token on the next `up`"),
        ("member has been registered with discovery service", "this member's ID is already registered under the token (data wiped after a bootstrap): a new cluster needs a new token"),
        ("found duplicate id", "the discovery token already holds this member: a new cluster needs a new token"),
        ("discovery cluster is full", "the discovery token already has its full size of members"),
        // v3 discovery (3.6+), its errors as server/etcdserver/api/v3discovery/discovery.go words them.
        ("discovery: size key not found", "the token's _config/size key is missing in the backend (deleted once a cluster formed under it): a new cluster needs a new token, which `up` makes after `down --wipe`"),
        ("discovery: size key is bad", "the token's _config/size key does not hold a positive decimal number"),
        ("discovery: cluster is full", "the discovery token already holds its size of other members: a new cluster needs a new token"),
        ("cannot find local etcd member", "the SRV records do not match this member's advertised peer URL (etcd compares resolved IP:port)"),
        ("error querying DNS SRV records for _etcd-server-ssl", "etcd 3.4 only bootstraps from _etcd-server-ssl SRV records with TLS peers (etcd issue 11321)"),
        ("member ID has already been bootstrapped", "this member's data dir was wiped while the cluster still knows it: member remove, member add, start with state existing"),
        ("is out of range [lastIndex(0)]", "a wiped member started with state existing: remove and re-add it"),
        ("Key not found", "the discovery size key is missing"),
        ("address already in use", "another process holds the member's port"),
        ("permission denied", "the etcd user cannot read or write a file muster gave it"),
    ]

    static func explain(_ log: String) -> String? {
        for entry in causes where log.contains(entry.line) {
            return "etcd logged '\(entry.line)': \(entry.cause)"
        }
        return nil
    }
}
