import Foundation
import MusterBasics

/// The disk before day one: how long one write of a WAL entry's size takes to become durable on
/// a member's data dir's filesystem, measured by `up`'s preflight before the member's first
/// start. etcd makes each raft entry durable in its WAL (write, then fdatasync) before it
/// answers or acknowledges a leader, so a disk slower than its FAQ's 10 ms p99 turns into late
/// heartbeats and leader changes; once the member holds data, `verify`'s `disk-wal-fsync` reads
/// the same from etcd itself.
///
/// Nothing is installed on the host: bash (Essential on Debian, 5.0 or later for
/// `EPOCHREALTIME`) times coreutils' `dd` writing one block with `oflag=dsync` (O_DSYNC: each
/// write returns once durable, as write plus fdatasync) into a file preallocated first, as etcd
/// preallocates its WAL files (fallocate, the allocation made durable before the first write;
/// zeros written where the filesystem cannot). Each write's time is less the median time of the
/// same `dd` without O_DSYNC, so that starting `dd` is not counted as the disk's.
enum DiskLatency {
    /// The block size of the fio test commonly run for etcd (`fio --rw=write --ioengine=sync
    /// --fdatasync=1 --bs=2300`, from IBM's "Using fio to tell whether your storage is fast
    /// enough for etcd"): about the size of a WAL entry.
    static let writeBytes = 2300
    static let writes = 200
    /// The measurement stops after this long on a host's filesystem, however few writes it made
    /// (a slow disk is known after a few).
    static let budget: Duration = .seconds(2)
    static var threshold: MetricThreshold { MetricThresholds.diskPreflight }

    struct Measurement: Sendable, Equatable {
        /// Where the probe file was written: the data dir, or its nearest existing parent.
        var directory = ""
        /// Seconds per durable write, less the cost of starting `dd`.
        var samples: [Double] = []
        var error: String?

        var p50: Double? { Self.quantile(0.50, of: samples) }
        var p99: Double? { Self.quantile(0.99, of: samples) }

        /// Nearest rank: the smallest sample with at least `q` of them at or under it.
        static func quantile(_ q: Double, of samples: [Double]) -> Double? {
            guard !samples.isEmpty else { return nil }
            let sorted = samples.sorted()
            return sorted[max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        }
    }

    /// The preflight's line that measures each of `dataDirectories` holding no data yet (no
    /// `member/` in it); one measurement per filesystem, repeated for the others on it. Prints
    /// `diskfor PATH`, then `diskon DIR`, `diskbase US...` and `disklat US...`, or `diskerr WHY`.
    static func script(dataDirectories: [String]) -> String {
        let arguments = [String(writeBytes), String(writes), String(budget.components.seconds * 1_000_000)] + dataDirectories
        let missingBash = "for d in \(Shell.join(dataDirectories)); do [ -d \"$d/member\" ] || printf 'diskfor %s\\ndiskerr no bash on the host\\n' \"$d\"; done"
        return "if command -v bash >/dev/null 2>&1; then bash -c \(Shell.quote(probe)) muster-disk-check \(Shell.join(arguments)); else \(missingBash); fi"
    }

    /// Run by bash with the block size, the count, the budget in microseconds and the data dirs;
    /// times are microseconds from `EPOCHREALTIME` (its separator follows the locale).
    private static let probe = #"""
        size=$1 count=$2 budget=$3; shift 3
        f=
        trap '[ -n "$f" ] && rm -f -- "$f"' EXIT
        declare -A measured
        for data in "$@"; do
          [ -d "$data/member" ] && continue
          echo "diskfor $data"
          if [ -z "${EPOCHREALTIME:-}" ]; then echo "diskerr bash $BASH_VERSION has no EPOCHREALTIME (bash 5 has)"; continue; fi
          d=$data; while [ ! -e "$d" ]; do d=${d%/*}; d=${d:-/}; done
          dev=$(stat -c %d -- "$d") || { echo "diskerr cannot stat $d"; continue; }
          if [ -n "${measured[$dev]:-}" ]; then printf '%s\n' "${measured[$dev]}"; continue; fi
          f=$(mktemp -p "$d" .muster-disk-check.XXXXXX) || { f=; echo "diskerr cannot create a file in $d"; continue; }
          out="diskon $d"
          if { fallocate -l $((size * count)) -- "$f" && dd if=/dev/null of="$f" conv=notrunc,fsync status=none; } ||
             dd if=/dev/zero of="$f" bs="$size" count="$count" conv=fsync status=none; then
            base= lat=
            for ((i = 0; i < 9; i++)); do
              t0=${EPOCHREALTIME/[.,]/}
              dd if=/dev/zero of="$f" bs="$size" count=1 seek=$i conv=notrunc status=none
              t1=${EPOCHREALTIME/[.,]/}
              base+=" $((t1 - t0))"
            done
            start=${EPOCHREALTIME/[.,]/}
            for ((i = 0; i < count; i++)); do
              t0=${EPOCHREALTIME/[.,]/}
              dd if=/dev/zero of="$f" bs="$size" count=1 seek=$i conv=notrunc oflag=dsync status=none || break
              t1=${EPOCHREALTIME/[.,]/}
              lat+=" $((t1 - t0))"
              ((t1 - start < budget)) || break
            done
            out+=$'\n'"diskbase$base"$'\n'"disklat$lat"
          else
            out+=$'\n'"diskerr cannot write $((size * count)) bytes in $d"
          fi
          rm -f -- "$f"; f=
          measured[$dev]=$out
          printf '%s\n' "$out"
        done
        """#

    /// Folds the script's lines into measurements by data dir; `line` is one output line.
    struct Reader {
        var measurements: [String: Measurement] = [:]
        private var current: String?
        private var base: [Double] = []

        /// Whether the line was one of the probe's.
        mutating func read(_ line: Substring) -> Bool {
            guard let space = line.firstIndex(of: " ") else { return line == "disklat" || line == "diskbase" }
            let key = line[..<space], rest = String(line[line.index(after: space)...])
            if key == "diskfor" {
                current = rest
                measurements[rest] = Measurement()
                base = []
                return true
            }
            guard let current, ["diskon", "diskbase", "disklat", "diskerr"].contains(key) else { return false }
            let microseconds = rest.split(separator: " ").compactMap { Double($0) }.map { $0 / 1_000_000 }
            switch key {
            case "diskon": measurements[current]?.directory = rest
            case "diskbase": base = microseconds
            case "disklat":
                // The median start-up of `dd` comes off each durable write.
                let startUp = Measurement.quantile(0.5, of: base) ?? 0
                measurements[current]?.samples = microseconds.map { max(0, $0 - startUp) }
            default: measurements[current]?.error = rest
            }
            return true
        }
    }

    /// What preflight says of one host's measurements: its progress line, and a refusal when a
    /// p99 is over the threshold's `fail`.
    static func judge(host: String, _ measurements: [String: Measurement]) -> (lines: [String], problems: [String]) {
        var lines: [String] = [], problems: [String] = []
        for (data, measurement) in measurements.sorted(by: { $0.key < $1.key }) {
            guard let p50 = measurement.p50, let p99 = measurement.p99 else {
                lines.append("WARN: fdatasync not measured for \(data): \(measurement.error ?? "no write made")")
                continue
            }
            let writes = measurement.samples.count == 1 ? "1 write" : "\(measurement.samples.count) writes"
            let figures = "fdatasync p50 \(milliseconds(p50)), p99 \(milliseconds(p99)) (\(writes) of \(writeBytes) bytes in \(measurement.directory), for \(data))"
            if p99 > threshold.fail! {
                lines.append("FAILED: " + figures)
                problems.append("\(host): the disk of \(data) is too slow for etcd: fdatasync p99 \(milliseconds(p99)) (p50 \(milliseconds(p50)), \(writes) of \(writeBytes) bytes in \(measurement.directory)), over \(milliseconds(threshold.fail!)); etcd wants under \(milliseconds(threshold.warn!)) (its FAQ) and misses heartbeats on such a disk. Put the data dir on a faster disk, or start anyway with `muster up --skip-disk-check`")
            } else if p99 > threshold.warn! {
                lines.append("WARN: " + figures + ", over the \(milliseconds(threshold.warn!)) etcd's FAQ asks for")
            } else {
                lines.append(figures)
            }
        }
        return (lines, problems)
    }

    static func milliseconds(_ seconds: Double) -> String {
        seconds < 0.010 ? String(format: "%.2f ms", seconds * 1000) : String(format: "%.0f ms", seconds * 1000)
    }
}
