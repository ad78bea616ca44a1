/// A test harness could not set up what a test needs (no free port, a missing binary, a
/// process that never came up). Its description is the whole message: it ends up verbatim in
/// the test report, so it says what is missing and how to get it.
public struct HarnessError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}
