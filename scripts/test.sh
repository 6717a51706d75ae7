#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds into
# build-test/, runs every meson test and ends with "N passed, N failed".
# Arguments go to meson test; -t N also scales the tests' own subprocess
# limits (BLLM_TIMEOUT_SCALE). BLLM_TEST_BUILD / BLLM_TEST_SETUP name another
# build folder and its meson setup options (scripts/sanitize.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
set -e
install_all
SHARED=${BLLM_SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/data" ] || { log "missing $SHARED/data (the shared data folder beside the repo); set BLLM_SHARED"; exit 1; }
B=${BLLM_TEST_BUILD:-build-test}
scale=1 prev=
for a in "$@"; do
    case $prev in -t|--timeout-multiplier) scale=$a ;; esac
    prev=$a
done
export BLLM_TIMEOUT_SCALE=$scale
log "building into $B/"
if [ ! -f $B/build.ninja ]; then
    # shellcheck disable=SC2086
    meson setup $B ${BLLM_TEST_SETUP:-} -Dpython="$BLLM_VENV/bin/python" -Dshared_dir="$SHARED" >/dev/null
else
    meson configure $B -Dpython="$BLLM_VENV/bin/python" -Dshared_dir="$SHARED" >/dev/null
fi
ninja -C $B >/dev/null
set +e
meson test -C $B --print-errorlogs --num-processes 2 "$@"
status=$?
"$BLLM_VENV/bin/python" - $B/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $status
