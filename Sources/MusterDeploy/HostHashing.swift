/// How a host hashes a file in muster's scripts. OpenSSL's SHA-256 uses the CPU's SHA
/// instructions where coreutils' `sha256sum` does not: measured on the sandbox, 0.02 s of CPU
/// for the 21.5 MB etcd binary against 0.17 s, paid by every host on every bring-up (the binary
/// it received) and every re-run (the binary it has). `sha256sum` where openssl is missing.
enum HostHashing {
    /// A shell function `muster_sha256 FILE` printing FILE's lowercase hex SHA-256, or nothing
    /// when FILE cannot be read. FILE is an absolute path (every path muster writes is), so it
    /// cannot be taken for an option by openssl, which older releases would not end at `--`.
    static let function = """
        muster_sha256() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1" | cut -c1-64; else sha256sum -- "$1" | cut -c1-64; fi; }
        """

    /// A shell function `muster_sha256_each FILE...` printing `fsum HASH FILE` for each FILE
    /// it can read, with one hashing process for all of them.
    static let eachFunction = """
        muster_sha256_each() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$@"; else sha256sum -- "$@"; fi | while read -r h p; do echo "fsum $h ${p#\\*}"; done; }
        """
}
