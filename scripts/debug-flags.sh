# Sourced by the scripts that build debug (demo, tests, goldens), so they share one build.
# No debug info: measured here, debug info costs BoringSSL's C files (swift-nio-ssl's copy) about
# 15% of its compile time and Swift's frontend more, and nothing muster's scripts run reads it
# (a test failure names its file and line from the #expect macro). Build without these flags
# (plain `swift build`) for a debugger; that is a full rebuild.
debug_flags=(-Xswiftc -gnone -Xcc -g0)
