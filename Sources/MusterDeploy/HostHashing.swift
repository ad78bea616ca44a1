/// How a host hashes a file in muster's scripts. OpenSSL's SHA-256 uses the CPU's SHA
/// instructions where coreutils' `sha256sum` does not: measured on the sandbox, 0.02 s of CPU
/// for the 21.5 MB etcd binary against 0.17 s, paid by every host on every bring-up (the binary
/// it received) and every re-run (the binary it has). `sha256sum` where openssl is missing.
enum HostHashing {
    /// A shell function `muster_sha256_each FILE...` printing `fsum HASH FILE` for each FILE
    /// it can read, with one hashing process for all of them.
    static let eachFunction = """
        muster_sha256_each() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$@"; else sha256sum -- "$@"; fi | while read -r h p; do echo "fsum $h ${p#\\*}"; done; }
        """
}
