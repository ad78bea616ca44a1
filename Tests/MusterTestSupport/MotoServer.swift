import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// moto's S3 server on loopback, from the virtual environment `scripts/setup.sh` makes
/// (`MUSTER_S3_VENV`, default /var/lib/muster/venv), on a free port; `stop()` ends it. Its
/// Python also runs the boto3/botocore cross-checks (`python(_:)`).
public final class MotoServer: @unchecked Sendable {
    public static var venv: String { ProcessInfo.processInfo.environment["MUSTER_S3_VENV"] ?? "/var/lib/muster/venv" }
    public static var pythonPath: String { venv + "/bin/python" }
    public let port: Int
    public let endpoint: String
    /// Where a server started `holdingPartsUntil:` writes the most `UploadPart` requests it held together.
    public let partsInFlightPath: String
    private let process: Process
    /// Fixed test credentials (moto accepts any; `strict` below makes it check them).
    public static let accessKeyID = "AKIAMUSTERTEST000001"
    public static let secretAccessKey = "muster/test/secret/key/0123456789abcdefghij"

    /// The venv or a clear reason why the S3 tests cannot run.
    public static func requireVenv() throws {
        guard FileManager.default.isExecutableFile(atPath: pythonPath) else {
            throw HarnessError(description: "no Python virtual environment at \(venv) (moto[server], boto3): run scripts/setup.sh as root first")
        }
    }

    /// Starts moto. With `authenticatingAfter: N`, moto checks every request's key and
    /// signature against its own IAM after the first N (`INITIAL_NO_AUTH_ACTION_COUNT`): those
    /// create the IAM user and key a test then signs with.
    ///
    /// With `holdingPartsUntil: N`, every `UploadPart` request (a PUT with `partNumber` and a
    /// body, not a copy) is held before moto sees it until N of them are held together, or for
    /// at most 20 s (then none is held any more); the most ever held together is written to `partsInFlightPath` as each
    /// request arrives. A client that sends its parts one at a time shows 1 there (after the
    /// 20 s of its first part); one that keeps K on their way shows K, never more, while N > K.
    public init(logDirectory: String, authenticatingAfter unauthenticated: Int? = nil, holdingPartsUntil gate: Int? = nil) throws {
        try Self.requireVenv()
        port = try FreePorts.pick(1).first!
        endpoint = "http://127.0.0.1:\(port)"
        partsInFlightPath = logDirectory + "/parts-in-flight"
        let arguments = ["-c", """
            import sys, threading
            from moto.moto_server import threaded_moto_server as served
            gate = int(sys.argv[2])
            if gate > 0:
                condition = threading.Condition()
                held = {"now": 0, "most": 0, "open": False}
                def counting(app):
                    def handle(environ, start_response):
                        query = environ.get("QUERY_STRING", "")
                        part = environ["REQUEST_METHOD"] == "PUT" and "partNumber=" in query and "HTTP_X_AMZ_COPY_SOURCE" not in environ
                        if not part:
                            return app(environ, start_response)
                        with condition:
                            held["now"] += 1
                            held["most"] = max(held["most"], held["now"])
                            with open(sys.argv[3], "w") as out:
                                out.write(str(held["most"]))
                            condition.notify_all()
                            # Once N were held, or once a part waited its 20 s, the gate stays open.
                            if not condition.wait_for(lambda: held["open"] or held["most"] >= gate, timeout=20):
                                held["open"] = True
                                condition.notify_all()
                        try:
                            return app(environ, start_response)
                        finally:
                            with condition:
                                held["now"] -= 1
                    return handle
                plain = served.DomainDispatcherApplication
                served.DomainDispatcherApplication = lambda create: counting(plain(create))
            server = served.ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
            server.start()
            threading.Event().wait()
            """, String(port), String(gate ?? 0), partsInFlightPath]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.pythonPath)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        if let unauthenticated { environment["INITIAL_NO_AUTH_ACTION_COUNT"] = String(unauthenticated) }
        process.environment = environment
        let logPath = logDirectory + "/moto.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(60)
        while !FreePorts.accepts(port) {
            guard ChildProcesses.isAlive(process), Date() < deadline else {
                ChildProcesses.forceStop(process)
                let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw HarnessError(description: "moto's S3 server did not listen on 127.0.0.1:\(port) within 60 s: \(text.suffix(2000))")
            }
            usleep(50_000)
        }
    }

    /// The most `UploadPart` requests served side by side so far (0 before the first; only
    /// counted by a server started `holdingPartsUntil:`).
    public func partsInFlight() -> Int {
        (try? String(contentsOfFile: partsInFlightPath, encoding: .utf8)).flatMap { Int($0) } ?? 0
    }

    /// The environment muster and boto3 read (no profile files: HOME points nowhere useful).
    public func environment(accessKeyID: String = MotoServer.accessKeyID, secretAccessKey: String = MotoServer.secretAccessKey) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
         "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"]
    }

    /// Runs `script` in the venv's Python with this server's environment; its stdout, or throws
    /// with its stderr when it exits non-zero.
    public func python(_ script: String, _ arguments: [String] = []) throws -> String {
        try Self.python(script, arguments, environment: environment())
    }

    public static func python(_ script: String, _ arguments: [String] = [], environment: [String: String] = [:]) throws -> String {
        try requireVenv()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pythonPath)
        process.arguments = ["-c", script] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let errorPath = NSTemporaryDirectory() + "/muster-python-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { unlink(errorPath) }
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let errors = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            throw HarnessError(description: "python exited \(process.terminationStatus): \(errors.suffix(3000))")
        }
        return String(decoding: output, as: UTF8.self)
    }

    public func stop() { ChildProcesses.forceStop(process) }

    deinit { ChildProcesses.forceStop(process) }
}
