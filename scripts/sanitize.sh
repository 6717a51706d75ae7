#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer
# (gcc), in build-asan/, with meson's and the tests' own time limits scaled
# by 5 (a sanitized build runs 2-5x slower). Ends with "N passed, N failed".
#   usage: scripts/sanitize.sh [meson test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
export BLLM_TEST_BUILD=build-asan
export BLLM_TEST_SETUP="-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec scripts/test.sh -t 5 "$@"
