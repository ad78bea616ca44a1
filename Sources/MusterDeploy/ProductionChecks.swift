import Foundation
import MusterEtcd
import MusterPKI
import MusterPlan
import MusterWorkspace

/// The checks of `muster verify` beyond "formed and serving": will the cluster stay up
/// (certificates' days left, and what each member's metrics say).
struct ProductionChecks {
    let cluster: ClusterPlan
    /// Each member and the client that reaches it (directly or through its tunnel).
    let clients: [(ExpectedMember, EtcdClient)]
    /// Each member and a client of its peer URL (TLS clusters: only its handshake is used).
    var peerClients: [(MemberPlan, EtcdClient)] = []
    let stateDirectory: String
    /// The cluster record as verification read it (the snapshot schedule and snapshots).
    let record: ClusterRecord?
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
        [sampled.expiry, snapshotAge()] + MetricChecks(members: sampled.metrics, peerNames: peerNames).all()
    }

    /// `snapshot-age`: with a schedule recorded (`muster snapshot schedule`), the newest recorded
    /// snapshot must be younger than twice its interval; a schedule whose runs fail or stopped is
    /// otherwise silent until the day a restore needs them.
    func snapshotAge(now: Date = Date()) -> VerificationReport.Check {
        guard let schedule = record?.snapshotSchedule else {
            return .init(name: "snapshot-age", ok: true, severity: .warn, detail: "no snapshot schedule recorded (muster snapshot schedule)")
        }
        let limit = TimeInterval(2 * schedule.everySeconds)
        let newest = record?.snapshots.max { $0.takenAt < $1.takenAt }
        let since = newest?.takenAt ?? schedule.since
        let age = now.timeIntervalSince(since)
        let what = newest.map { "the newest snapshot (\($0.file)) is \(Self.duration(age)) old" } ?? "no snapshot since the schedule was set \(Self.duration(age)) ago"
        guard age > limit else {
            return .init(name: "snapshot-age", ok: true, severity: .warn, detail: "\(what); the schedule takes one every \(Self.duration(TimeInterval(schedule.everySeconds)))")
        }
        return .init(name: "snapshot-age", ok: false, severity: .warn,
                     detail: "\(what), over twice the schedule's \(Self.duration(TimeInterval(schedule.everySeconds))): see `systemctl status \(schedule.unit).service` and `journalctl -u \(schedule.unit).service`")
    }

    static func duration(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds.rounded())
        if whole < 120 { return "\(whole) s" }
        if whole < 7200 { return "\(whole / 60) min" }
        if whole < 2 * 86400 { return "\(whole / 3600) h" }
        return "\(whole / 86400) days"
    }

    /// The cluster's certificates in the state, and the ones each member presents on its client
    /// URL and on its peer URL (a TLS cluster only).
    func certificateExpiry() async -> VerificationReport.Check {
        guard cluster.tls else { return CertificateExpiry.check([], unreadable: []) }
        let directory = ClusterPKI.directory(stateDirectory: stateDirectory, cluster: cluster.name)
        var (seen, unreadable) = CertificateExpiry.held(inDirectory: directory, labelPrefix: "pki/\(cluster.name)/")
        let targets = clients.map { (name: $0.0.name, port: "at \($0.0.endpoint)", client: $0.1) }
            + peerClients.map { (name: $0.0.name, port: "at its peer URL \($0.0.peerURL)", client: $0.1) }
        let presented = await withTaskGroup(of: (Int, Result<PresentedCertificate?, EtcdClientError>).self) { group in
            for (index, target) in targets.enumerated() {
                group.addTask {
                    do throws(EtcdClientError) {
                        return (index, .success(try await target.client.presentedCertificate()))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var answers = [Result<PresentedCertificate?, EtcdClientError>?](repeating: nil, count: targets.count)
            for await (index, answer) in group { answers[index] = answer }
            return answers.compactMap { $0 }
        }
        for (index, answer) in presented.enumerated() {
            let target = targets[index]
            switch answer {
            case .success(let certificate?):
                // Member certificates have no CN (etcd would take it for a user name).
                let name = certificate.commonName.isEmpty ? "" : " (CN \(certificate.commonName))"
                seen.append(.init(label: "the certificate \(target.name) presents \(target.port)\(name)",
                                  notAfter: certificate.notAfter))
            case .success(nil): break
            case .failure(let error):
                unreadable.append("the certificate \(target.name) presents \(target.port): \(error.message)")
            }
        }
        return CertificateExpiry.check(seen, unreadable: unreadable)
    }
}
