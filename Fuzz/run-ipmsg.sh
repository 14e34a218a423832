#!/bin/sh
# Builds the IP Messenger codec fuzzer with libFuzzer and AddressSanitizer and runs it.
#   Fuzz/run-ipmsg.sh [seconds]        (default 30)
# New interesting inputs go to .build/fuzz/ipmsg-corpus; a crashing input is saved as
# .build/fuzz/ipmsg-crash-* and can be replayed with: .build/fuzz/ipmsg-codec-fuzz .build/fuzz/ipmsg-crash-*
set -eu
cd "$(dirname "$0")/.."
mkdir -p .build/fuzz/ipmsg-corpus
swiftc -sanitize=fuzzer,address -parse-as-library -O -use-ld=lld \
    -module-name IPMsgFuzz Sources/IPMsg/Codec/*.swift Fuzz/IPMsgCodecFuzz.swift \
    -o .build/fuzz/ipmsg-codec-fuzz
# The Swift runtime's own crash reporter would hold the process open; libFuzzer reports instead.
SWIFT_BACKTRACE=enable=no exec .build/fuzz/ipmsg-codec-fuzz \
    -max_total_time="${1:-30}" -max_len=8300 -print_final_stats=1 \
    -artifact_prefix=.build/fuzz/ipmsg- .build/fuzz/ipmsg-corpus Fuzz/ipmsg-seeds
