import Foundation
import MusterBasics

/// The systemd service and timer (and the crontab line) of `muster snapshot schedule`: pure text
/// from the command each run executes and how often.
struct ScheduleUnits {
    /// How often, in the forms both a systemd calendar and a crontab line can say exactly:
    /// minutes dividing an hour, hours dividing a day, a day, a week.
    enum Interval: Equatable {
        case minutes(Int), hours(Int), day, week

        init?(_ text: String) {
            let number = Int(text.dropLast()) ?? 0
            switch text.last {
            case "m" where number >= 1 && 60 % number == 0: self = .minutes(number)
            case "h" where number >= 1 && 24 % number == 0: self = number == 24 ? .day : .hours(number)
            case "d" where number == 1: self = .day
            case "d" where number == 7: self = .week
            case "w" where number == 1: self = .week
            default: return nil
            }
        }

        var seconds: Int {
            switch self {
            case .minutes(let m): return m * 60
            case .hours(let h): return h * 3600
            case .day: return 86400
            case .week: return 7 * 86400
            }
        }

        var onCalendar: String {
            switch self {
            case .minutes(let m): return m == 1 ? "*:*:00" : "*:0/\(m):00"
            case .hours(let h): return h == 1 ? "hourly" : "0/\(h):00:00"
            case .day: return "daily"
            case .week: return "weekly"
            }
        }

        var crontab: String {
            switch self {
            case .minutes(let m): return m == 1 ? "* * * * *" : "*/\(m) * * * *"
            case .hours(let h): return h == 1 ? "0 * * * *" : "0 */\(h) * * *"
            case .day: return "0 0 * * *"
            case .week: return "0 0 * * 1"
            }
        }
    }

    var name: String
    var description: String
    var commands: [[String]]
    var interval: Interval
    var home: String

    /// A tenth of the interval, at most five minutes: runs of many clusters spread out, and a
    /// schedule of 15 minutes still runs every 15.
    var randomizedDelaySeconds: Int { min(interval.seconds / 10, 300) }

    var service: String {
        """
        [Unit]
        Description=\(description)
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=oneshot
        Environment=\(Self.systemdWord("HOME=" + home))
        Nice=10
        \(commands.map { "ExecStart=" + $0.map(Self.systemdWord).joined(separator: " ") }.joined(separator: "\n"))

        """
    }

    var timer: String {
        """
        [Unit]
        Description=\(description), on a schedule

        [Timer]
        OnCalendar=\(interval.onCalendar)
        Persistent=true
        RandomizedDelaySec=\(randomizedDelaySeconds)
        Unit=\(name).service

        [Install]
        WantedBy=timers.target

        """
    }

    /// The same runs from cron, for machines without systemd: each command after the one before
    /// succeeded, as the service's ExecStart lines run.
    var crontabLine: String {
        interval.crontab + " " + commands.map(Shell.join).joined(separator: " && ")
    }

    /// One ExecStart word: as is when it holds only plain characters, else double-quoted with
    /// systemd's escapes; `%` (specifiers) and `$` (variables) always escaped.
    static func systemdWord(_ word: String) -> String {
        let escaped = word.replacingOccurrences(of: "%", with: "%%").replacingOccurrences(of: "$", with: "$$")
        let plain = escaped.unicodeScalars.allSatisfy { CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._:=@+,%$-").contains($0) }
        if plain && !escaped.isEmpty { return escaped }
        return "\"" + escaped.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A unit name from the inventory's and cluster's names: what systemd allows, others as `_`.
    static func unitName(inventory: String, cluster: String) -> String {
        let base = URL(fileURLWithPath: inventory).deletingPathExtension().lastPathComponent
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
        let clean = { (text: String) in String(String.UnicodeScalarView(text.unicodeScalars.map { allowed.contains($0) ? $0 : "_" })) }
        return "muster-snapshot-\(clean(base))-\(clean(cluster))"
    }
}
