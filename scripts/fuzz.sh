#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz / libFuzzer: scripts/fuzz.sh [SECONDS] [TARGET...]
# runs each target of fuzz/fuzz_targets/ (all by default) for SECONDS (default 30) from the
# committed seeds in fuzz/corpus/<target>/ and prints how many inputs each one ran. Inputs
# libFuzzer adds go to a temporary directory, so a run leaves the tree as it was; a crash
# leaves its input in fuzz/artifacts/<target>/ and makes the script fail once all have run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
[ $# -gt 0 ] && shift
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

# cargo-fuzz passes -Z flags (sanitizers, coverage) to cargo and rustc; RUSTC_BOOTSTRAP lets
# the stable toolchain take them.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
# One build for every target before the clock of the first one starts.
cargo fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/corpus/$t"
    echo "fuzzing $t for ${seconds}s" >&2
    status=0
    # The first corpus directory receives what libFuzzer finds; the committed seeds are only
    # read. A slow input counts as a failure after 10 s (an endless loop on hostile input).
    cargo fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -n 1)
    line="$t: ${execs:-?} executions (${rate:-?}/s), $(find "$work/$t" -type f | wc -l) new inputs"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        line="$line, FAILED (status $status)"
        # The panic or sanitizer report and where the input was saved.
        grep -E -A4 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$work/$t.log" | head -n 20 >&2 || true
        grep -E "Test unit written to|artifact_prefix" "$work/$t.log" >&2 || true
    fi
    summary+=("$line")
done

echo "--- fuzzing, ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
