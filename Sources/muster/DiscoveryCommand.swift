import MusterBasics
import ArgumentParser
import Foundation
import MusterDiscovery

struct DiscoveryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discovery",
        abstract: "A discovery.etcd.io-compatible discovery service, backed by an etcd you run.",
        subcommands: [DiscoveryServe.self])
}

struct DiscoveryServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve GET /new?size=N and the v2 keys protocol of etcd's discovery client, in the foreground.",
        discussion: """
            Tokens live in the backing etcd under /_etcd/registry/TOKEN (the layout of \
            etcd-io/discoveryserver); it must serve the v2 keys API (--enable-v2). Tokens older \
            than --max-age-days are deleted by an hourly sweep. One log line per request on \
            standard output. The service stays in the foreground and stops on SIGTERM or SIGINT; \
            to detach it, start it with setsid and redirect its output, e.g. \
            `setsid muster discovery serve ... --pidfile /run/muster-discovery.pid \
            >/var/log/muster-discovery.log 2>&1 < /dev/null &`, and stop it with \
            `kill $(cat /run/muster-discovery.pid)`.
            """)

    @Option(help: ArgumentHelp("Address and port to listen on: IP:PORT or [IPv6]:PORT.", valueName: "addr:port"))
    var listen: String

    @Option(help: ArgumentHelp("The backing etcd's client URL (http://HOST:PORT).", valueName: "url"))
    var etcd: String

    @Option(name: .customLong("base-url"),
            help: ArgumentHelp("The start of the token URLs /new answers, as members reach the service. Required unless --listen is a loopback address (default then: http://ADDR:PORT of --listen); a request's Host header is never used.", valueName: "url"))
    var baseURL: String?

    @Option(help: ArgumentHelp("Write the service's pid here once it listens (removed when it stops).", valueName: "path"))
    var pidfile: String?

    @Option(help: "Delete tokens created more than this many days ago.")
    var maxAgeDays = 7

    @Option(help: "Seconds a long poll (?wait=true) waits before an empty answer (etcd then asks again).")
    var waitTimeout = 30

    @Option(help: "Tokens the service holds at most (/new answers 503 beyond until the sweep drops old ones).")
    var maxTokens = 100_000

    @Option(help: "New tokens one client address (an IPv6 one by its /64) may make a minute, after a burst of 10.")
    var newTokensPerMinute = 6

    @Option(help: "Connections one client address may hold open (long polls included).")
    var maxConnectionsPerClient = 32

    func validate() throws {
        guard Self.parseListen(listen) != nil else {
            throw ValidationError("--listen must be IP:PORT or [IPv6]:PORT with an IP address (e.g. 0.0.0.0:8087), not '\(listen)'")
        }
        guard Self.isHTTPURL(etcd) else { throw ValidationError("--etcd must be an http:// or https:// URL, not '\(etcd)'") }
        if let baseURL, !Self.isHTTPURL(baseURL) {
            throw ValidationError("--base-url must be an http:// or https:// URL, not '\(baseURL)'")
        }
        if baseURL == nil, let (host, _) = Self.parseListen(listen), !DiscoveryServerOptions.isLoopback(host) {
            throw ValidationError("--listen \(listen) is beyond loopback: give --base-url, the URL members reach the service at (e.g. http://10.0.0.5:8087); token URLs are never made from a request's Host header")
        }
        guard (1...3650).contains(maxAgeDays) else { throw ValidationError("--max-age-days must be 1-3650") }
        guard (1...3600).contains(waitTimeout) else { throw ValidationError("--wait-timeout must be 1-3600 seconds") }
        guard (1...10_000_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be 1-10000000") }
        guard (1...60_000).contains(newTokensPerMinute) else { throw ValidationError("--new-tokens-per-minute must be 1-60000") }
        guard (1...512).contains(maxConnectionsPerClient) else { throw ValidationError("--max-connections-per-client must be 1-512") }
    }

    func run() async throws {
        try await reportingErrors {
            guard let (host, port) = Self.parseListen(listen) else { throw ValidationError("bad --listen") }
            var options = DiscoveryServerOptions(host: host, port: port, etcdURL: etcd, baseURL: baseURL, pidfile: pidfile)
            options.maxTokenAge = TimeInterval(maxAgeDays) * 86400
            options.waitTimeout = TimeInterval(waitTimeout)
            options.maxTokens = maxTokens
            options.newTokensPerMinute = newTokensPerMinute
            options.maxConnectionsPerClient = maxConnectionsPerClient
            options.maxLongPollsPerClient = maxConnectionsPerClient
            options.handleSignals = true
            try await DiscoveryServer(options: options).run()
        }
    }

    static func parseListen(_ text: String) -> (host: String, port: Int)? {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port), isIPAddress(String(host)) else { return nil }
        return (String(host), port)
    }

    static func isIPAddress(_ text: String) -> Bool { IPAddress.isLiteral(text) }

    static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme, scheme == "http" || scheme == "https" else { return false }
        return url.host != nil
    }
}
