#!/usr/bin/env bash
# Long fuzzing runs (docs/robustness.md): builds the harnesses with clang's
# libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer into
# build-fuzz/, makes the seed corpora, then runs each harness for SECONDS on
# its own working corpus (build-fuzz/fuzz/work/NAME, which keeps what
# libFuzzer finds; crashes land in build-fuzz/fuzz/crash-*).
#   usage: fuzz/run.sh [SECONDS] [stb|gguf|hf|llama2c|tokenizer ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
APT_PACKAGES+=(clang)
install_all
secs=${1:-60}
[ $# -gt 0 ] && shift
harnesses=${*:-stb gguf hf llama2c tokenizer}
SHARED=${BLLM_SHARED:-$(cd .. && pwd)/shared}
export BLLM_SHARED=$SHARED
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang CXX=clang++ meson setup build-fuzz -Dfuzzing=true -Dbuildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fsanitize=fuzzer-no-link -Dcpp_args=-fsanitize=fuzzer-no-link \
        -Dpython="$BLLM_VENV/bin/python" -Dshared_dir="$SHARED" >/dev/null
fi
targets=(fuzz/corpus.stamp)
for h in $harnesses; do targets+=("fuzz/fuzz-$h"); done
ninja -C build-fuzz "${targets[@]}" >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for h in $harnesses; do
    work=build-fuzz/fuzz/work/$h
    mkdir -p "$work"
    log "fuzzing $h for $secs s"
    (cd build-fuzz/fuzz && ./fuzz-$h -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
        "work/$h" "corpus/$h" 2>&1 | grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|ERROR|SUMMARY|crash-") ||
        true
    ls build-fuzz/fuzz/crash-* >/dev/null 2>&1 && { log "$h: crash inputs in build-fuzz/fuzz/"; status=1; }
done
exit $status
