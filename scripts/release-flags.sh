# Sourced by the scripts that build the shipped binary (install, benchmarks), so they share one
# build. Swift's runtime and Foundation are linked in (--static-swift-stdlib): the installed
# muster then runs without the toolchain's libraries beside it, and a large render touches fewer
# pages (measured: a 500-cluster render peaked at 31.6 MiB instead of 35.9, in the same time).
release_flags=(-c release --product muster --static-swift-stdlib)
