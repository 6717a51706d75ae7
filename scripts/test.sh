#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds into
# build-test/, runs every meson test and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
set -e
install_all
SHARED=${BLLM_SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/data" ] || { log "missing $SHARED/data (the shared data folder beside the repo); set BLLM_SHARED"; exit 1; }
log "building into build-test/"
if [ ! -f build-test/build.ninja ]; then
    meson setup build-test -Dpython="$BLLM_VENV/bin/python" -Dshared_dir="$SHARED" >/dev/null
else
    meson configure build-test -Dpython="$BLLM_VENV/bin/python" -Dshared_dir="$SHARED" >/dev/null
fi
ninja -C build-test >/dev/null
set +e
meson test -C build-test --print-errorlogs --num-processes 2 "$@"
status=$?
"$BLLM_VENV/bin/python" - build-test/meson-logs/testlog.json <<'PY'
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
