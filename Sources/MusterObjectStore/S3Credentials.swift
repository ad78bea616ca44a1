import Foundation

/// An access key, as the AWS CLI finds it. Its description never shows the secret or the token.
public struct S3Credentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "access key \(accessKeyID)" }
}

/// Where requests go and as whom: what the AWS CLI and SDKs read, in their order.
///
/// - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the
///   profile `AWS_PROFILE` (default `default`) in `AWS_SHARED_CREDENTIALS_FILE`
///   (`~/.aws/credentials`), else in `AWS_CONFIG_FILE` (`~/.aws/config`, `[profile NAME]`);
/// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`;
/// - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`, else
///   AWS's own (`https://s3.REGION.amazonaws.com`);
/// - trusted CAs for https: `AWS_CA_BUNDLE`, the profile's `ca_bundle`, else the system's.
public struct S3Configuration: Sendable {
    public var credentials: S3Credentials
    public var region: String
    /// A custom endpoint (`http://127.0.0.1:9000`): path-style addressing. Nil: AWS.
    public var endpoint: String?
    /// Where the credentials came from, for messages (`AWS_ACCESS_KEY_ID`, `profile default in ~/.aws/credentials`).
    public var credentialSource: String
    /// PEM certificates to trust for an https endpoint instead of the system's (`AWS_CA_BUNDLE`,
    /// the profile's `ca_bundle`): a private CA in front of MinIO or Ceph.
    public var caBundle: String?

    public init(credentials: S3Credentials, region: String, endpoint: String?, credentialSource: String = "given") {
        self.credentials = credentials
        self.region = region
        self.endpoint = endpoint
        self.credentialSource = credentialSource
    }

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Configuration {
        let home = environment["HOME"] ?? NSHomeDirectory()
        let profileName = nonEmpty(environment["AWS_PROFILE"]) ?? "default"
        let credentialsFile = nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"]) ?? home + "/.aws/credentials"
        let configFile = nonEmpty(environment["AWS_CONFIG_FILE"]) ?? home + "/.aws/config"
        let fromCredentials = try IniFile.read(credentialsFile)?[profileName] ?? [:]
        let fromConfig = try IniFile.read(configFile)?[profileName == "default" ? "default" : "profile \(profileName)"] ?? [:]

        let credentials: S3Credentials
        let source: String
        if let id = nonEmpty(environment["AWS_ACCESS_KEY_ID"]), let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"]) {
            credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(environment["AWS_SESSION_TOKEN"]))
            source = "AWS_ACCESS_KEY_ID"
        } else if let id = nonEmpty(fromCredentials["aws_access_key_id"]), let secret = nonEmpty(fromCredentials["aws_secret_access_key"]) {
            credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(fromCredentials["aws_session_token"]))
            source = "profile \(profileName) in \(credentialsFile)"
        } else if let id = nonEmpty(fromConfig["aws_access_key_id"]), let secret = nonEmpty(fromConfig["aws_secret_access_key"]) {
            credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(fromConfig["aws_session_token"]))
            source = "profile \(profileName) in \(configFile)"
        } else {
            throw ObjectStoreError(.credentials, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE, now '\(profileName)') with aws_access_key_id and aws_secret_access_key in \(credentialsFile) or \(configFile)")
        }
        let region = nonEmpty(environment["AWS_REGION"]) ?? nonEmpty(environment["AWS_DEFAULT_REGION"]) ?? nonEmpty(fromConfig["region"]) ?? "us-east-1"
        let endpoint = nonEmpty(environment["AWS_ENDPOINT_URL_S3"]) ?? nonEmpty(environment["AWS_ENDPOINT_URL"]) ?? nonEmpty(fromConfig["endpoint_url"])
        if let endpoint {
            guard let url = URLComponents(string: endpoint), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                  url.host?.isEmpty == false, url.query == nil else {
                throw ObjectStoreError(.usage, "the S3 endpoint '\(endpoint)' is not an http(s) URL (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the profile's endpoint_url)")
            }
        }
        var configuration = S3Configuration(credentials: credentials, region: region,
                                            endpoint: endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }, credentialSource: source)
        configuration.caBundle = nonEmpty(environment["AWS_CA_BUNDLE"]) ?? nonEmpty(fromConfig["ca_bundle"])
        return configuration
    }

    private static func nonEmpty(_ value: String?) -> String? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }
}

/// The AWS CLI's INI files: `[section]` and `key = value` lines, `#`/`;` comments.
enum IniFile {
    static func read(_ path: String) throws -> [String: [String: String]]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ObjectStoreError(.credentials, "cannot read \(path)")
        }
        return parse(String(decoding: data, as: UTF8.self))
    }

    static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                continue
            }
            // Indented lines continue a nested value (`s3 =` then `  addressing_style = path`): not read.
            guard let current, !raw.hasPrefix(" "), !raw.hasPrefix("\t"), let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = value
        }
        return sections
    }
}
