import Foundation
import MusterEtcd
import MusterPKI
import MusterPlan

/// The checks of `muster verify` beyond "formed and serving": will the cluster stay up
/// (certificates' days left, and what each member's metrics say).
struct ProductionChecks {
    let cluster: ClusterPlan
    /// Each member and the client that reaches it (directly or through its tunnel).
    let clients: [(ExpectedMember, EtcdClient)]
    let stateDirectory: String
    let sample: Duration

    /// What the checks judge: each member's metrics read twice `sample` apart, and the
    /// certificates' days left (read meanwhile).
    struct Sampled: Sendable {
        var metrics: [MemberMetrics]
        var expiry: VerificationReport.Check
    }

    func sample() async -> Sampled {
        async let expiry = certificateExpiry()
        let metrics = await MemberMetrics.sample(clients.map { (name: $0.0.name, client: $0.1) }, window: sample)
        return Sampled(metrics: metrics, expiry: await expiry)
    }

    /// `peerNames`: member names by hex ID, to name the peers of `peer-round-trip`.
    func checks(_ sampled: Sampled, peerNames: [String: String]) -> [VerificationReport.Check] {
        [sampled.expiry] + MetricChecks(members: sampled.metrics, peerNames: peerNames).all()
    }

    /// The cluster's certificates in the state, and the one each member presents on its client
    /// URL (a TLS cluster only).
    func certificateExpiry() async -> VerificationReport.Check {
        guard cluster.tls else { return CertificateExpiry.check([], unreadable: []) }
        let directory = ClusterPKI.directory(stateDirectory: stateDirectory, cluster: cluster.name)
        var (seen, unreadable) = CertificateExpiry.held(inDirectory: directory, labelPrefix: "pki/\(cluster.name)/")
        let presented = await withTaskGroup(of: (Int, Result<PresentedCertificate?, EtcdClientError>).self) { group in
            for (index, (_, client)) in clients.enumerated() {
                group.addTask {
                    do throws(EtcdClientError) {
                        return (index, .success(try await client.presentedCertificate()))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var answers = [Result<PresentedCertificate?, EtcdClientError>?](repeating: nil, count: clients.count)
            for await (index, answer) in group { answers[index] = answer }
            return answers.compactMap { $0 }
        }
        for (index, answer) in presented.enumerated() {
            let member = clients[index].0
            switch answer {
            case .success(let certificate?):
                seen.append(.init(label: "the certificate \(member.name) presents at \(member.endpoint) (CN \(certificate.commonName))",
                                  notAfter: certificate.notAfter))
            case .success(nil): break
            case .failure(let error):
                unreadable.append("the certificate \(member.name) presents: \(error.message)")
            }
        }
        return CertificateExpiry.check(seen, unreadable: unreadable)
    }
}
