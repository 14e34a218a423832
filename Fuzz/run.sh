#!/bin/sh
# Builds the codec fuzzer with libFuzzer and AddressSanitizer and runs it.
#   Fuzz/run.sh [seconds]        (default 30)
# New interesting inputs go to .build/fuzz/corpus; a crashing input is saved as
# .build/fuzz/crash-* and can be replayed with: .build/fuzz/room-codec-fuzz .build/fuzz/crash-*
set -eu
cd "$(dirname "$0")/.."
mkdir -p .build/fuzz/corpus
swiftc -sanitize=fuzzer,address -parse-as-library -O -use-ld=lld \
    -module-name RoomFuzz Sources/RoomProtocol/*.swift Fuzz/RoomCodecFuzz.swift \
    -o .build/fuzz/room-codec-fuzz
# The Swift runtime's own crash reporter would hold the process open; libFuzzer reports instead.
SWIFT_BACKTRACE=enable=no exec .build/fuzz/room-codec-fuzz \
    -max_total_time="${1:-30}" -max_len=8300 -print_final_stats=1 \
    -artifact_prefix=.build/fuzz/ .build/fuzz/corpus Fuzz/seeds
