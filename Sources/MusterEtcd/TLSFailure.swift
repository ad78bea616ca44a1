/// A TLS handshake failure in the operator's words. The TLS library's own text carries internal
/// error codes and the source paths of the build that made muster; only its reason (e.g.
/// `CERTIFICATE_VERIFY_FAILED`) says something, and what it means for a member is said here.
enum TLSFailure {
    static func explain(_ libraryText: String) -> String {
        let reasons = reasons(in: libraryText)
        let named = reasons.isEmpty ? "" : " (\(reasons.joined(separator: ", ")))"
        if reasons.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS handshake failed: the member's certificate is not signed by the CA muster holds for this cluster (another state dir's CA, or files changed by hand?)\(named)"
        }
        if reasons.contains(where: { $0.hasSuffix("ALERT_UNKNOWN_CA") }) {
            return "TLS handshake failed: the member does not trust muster's client certificate: its CA is not the one muster holds for this cluster (another state dir's CA?)\(named)"
        }
        if reasons.contains(where: { $0.hasSuffix("ALERT_BAD_CERTIFICATE") || $0.hasSuffix("ALERT_CERTIFICATE_UNKNOWN") }) {
            return "TLS handshake failed: the member refused muster's client certificate\(named)"
        }
        if reasons.contains("WRONG_VERSION_NUMBER") {
            return "TLS handshake failed: the member does not speak TLS on this port (a plain-http member?)\(named)"
        }
        return "TLS handshake failed\(named.isEmpty ? "" : named)"
    }

    /// The upper-case reasons of OpenSSL-style error strings (`...:SSL routines:FUNC:REASON`),
    /// without codes, library names or file paths.
    static func reasons(in text: String) -> [String] {
        var found: [String] = []
        for word in text.split(whereSeparator: { !($0.isUppercase || $0.isNumber || $0 == "_") }) {
            guard word.count >= 8, word.contains("_"), word.first?.isLetter == true, word.last != "_",
                  !found.contains(String(word)) else { continue }
            found.append(String(word))
        }
        return found
    }
}
