import Foundation
import NIOSSL

/// `cert-expiry`: the days left on every certificate a cluster depends on, those muster holds in
/// its state and those the members present, checked against two thresholds.
public enum CertificateExpiry {
    /// Under this many days left: a warning. `muster up` renews member and client certificates
    /// within the same 30 days (`ClusterPKI.defaultRenewalWindow`), so a warning on one of them
    /// means `up` has not run since; a CA is never renewed by muster.
    public static let warnDays = 30
    /// Under this many days left: a failure.
    public static let failDays = 7

    /// One certificate and where it was seen ("pki/main/ca.crt", "host1 presents at https://...").
    public struct Seen: Sendable, Equatable {
        public var label: String
        public var notAfter: Date
        public init(label: String, notAfter: Date) { self.label = label; self.notAfter = notAfter }
    }

    /// Every certificate file (`*.crt`) of one cluster's PKI directory in the state (the CAs,
    /// member server and peer certificates, muster's client certificate, named client
    /// certificates), and the files that could not be read.
    public static func held(inDirectory directory: String, labelPrefix: String) -> (seen: [Seen], unreadable: [String]) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".crt") }.sorted()
        var seen: [Seen] = [], unreadable: [String] = []
        for name in names {
            let path = directory + "/" + name
            do {
                guard let first = try NIOSSLCertificate.fromPEMFile(path).first else {
                    unreadable.append("\(labelPrefix)\(name): no certificate in it"); continue
                }
                seen.append(Seen(label: labelPrefix + name,
                                 notAfter: Date(timeIntervalSince1970: TimeInterval(first.notValidAfter))))
            } catch {
                unreadable.append("\(labelPrefix)\(name): \(error)")
            }
        }
        return (seen, unreadable)
    }

    /// Whole days left (rounded down; negative once expired).
    public static func daysLeft(_ notAfter: Date, now: Date) -> Int {
        Int((notAfter.timeIntervalSince(now) / 86400).rounded(.down))
    }

    /// The check: fails when any certificate has under `failDays` left, warns under `warnDays`
    /// or when a certificate could not be read (the other checks say why a member did not answer).
    public static func check(_ seen: [Seen], unreadable: [String], now: Date = Date()) -> VerificationReport.Check {
        func says(_ item: Seen) -> String {
            let days = daysLeft(item.notAfter, now: now)
            return days < 0 ? "\(item.label) expired \(-days) days ago" : "\(item.label) ends in \(days) days"
        }
        let failing = seen.filter { daysLeft($0.notAfter, now: now) < failDays }
        let warning = seen.filter { (failDays..<warnDays).contains(daysLeft($0.notAfter, now: now)) }
        var parts = (failing + warning).map(says)
        parts += unreadable.map { "cannot read \($0)" }
        if failing.isEmpty && warning.isEmpty && unreadable.isEmpty {
            guard let soonest = seen.min(by: { $0.notAfter < $1.notAfter }) else {
                return .init(name: "cert-expiry", ok: true, detail: "no certificates (the cluster does not use TLS)")
            }
            return .init(name: "cert-expiry", ok: true,
                         detail: "\(seen.count) certificates with \(warnDays) days or more left; the soonest: \(says(soonest))")
        }
        let renew = " (warn under \(warnDays) days, fail under \(failDays); `muster up` renews member and client certificates within \(warnDays) days of their end)"
        return .init(name: "cert-expiry", ok: false, severity: failing.isEmpty ? .warn : .fail,
                     detail: parts.joined(separator: "; ") + renew)
    }
}
