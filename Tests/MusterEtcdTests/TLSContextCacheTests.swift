import Foundation
import MusterPKI
import MusterTestSupport
import Testing
@testable import MusterEtcd

/// A health poll asks a new client every 50 ms for each member: the TLS context (PEM files read,
/// key parsed, OpenSSL context built) must be made once per TLS configuration in a run, and made
/// again only when the certificate files were replaced.
@Suite struct TLSContextCacheTests {
    @Test func oneContextServesEveryClientUntilTheFilesAreReplaced() throws {
        let state = try TemporaryDirectory(prefix: "muster-tls-cache")
        func clientTLS() throws -> EtcdTLS {
            let client = try ClusterPKI(stateDirectory: state.path, cluster: "main").clientCertificate()
            return EtcdTLS(caPath: client.caPath, certPath: client.certPath, keyPath: client.keyPath)
        }
        let tls = try clientTLS()
        // No client holds it once each poll's client is gone: the context must outlive them.
        weak let first = try Transport.shared(for: tls).get()
        for _ in 0..<20 {
            let client = EtcdClient(baseURL: "https://127.0.0.1:1", timeout: 1, tls: tls)
            #expect(client.http.transportError == nil)
        }
        let kept = try #require(first, "the context went with the client that made it")
        #expect(try Transport.shared(for: tls).get() === kept, "a later client built its own context")

        // A new CA and client certificate at the same paths (the cluster's state wiped and made
        // again in one process): a context that trusts the new CA.
        try FileManager.default.removeItem(atPath: state.path + "/pki")
        #expect(try clientTLS() == tls)
        let renewed = try Transport.shared(for: tls).get()
        #expect(renewed !== kept, "a context made from replaced files was used")
        #expect(try Transport.shared(for: tls).get() === renewed)
    }
}
