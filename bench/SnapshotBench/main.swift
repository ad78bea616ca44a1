// bench/snapshot.sh's client: one snapshot from one member through muster's EtcdClient (the call
// `muster snapshot save` makes), over the wire named; prints `bytes seconds sha256`.
//   muster-snapshot-bench grpc|gateway URL OUT [CA CERT KEY]
import Foundation
import MusterEtcd

let arguments = CommandLine.arguments
guard arguments.count == 4 || arguments.count == 7, ["grpc", "gateway"].contains(arguments[1]) else {
    FileHandle.standardError.write(Data("usage: muster-snapshot-bench grpc|gateway URL OUT [CA CERT KEY]\n".utf8))
    exit(2)
}
let tls = arguments.count == 7 ? EtcdTLS(caPath: arguments[4], certPath: arguments[5], keyPath: arguments[6]) : nil
let client = EtcdClient(baseURL: arguments[2], timeout: 10, tls: tls)
do {
    let download = arguments[1] == "grpc"
        ? try await client.saveSnapshotOverGRPC(to: arguments[3])
        : try await client.saveSnapshotThroughGateway(to: arguments[3])
    print(download.bytes, String(format: "%.3f", download.seconds), download.databaseSHA256)
} catch {
    FileHandle.standardError.write(Data("muster-snapshot-bench: \(error)\n".utf8))
    exit(1)
}
