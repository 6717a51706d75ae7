#!/bin/sh
# usage: build_model.sh OUT INPUT... -- COMMAND...
# Runs COMMAND (which writes OUT) when every INPUT exists and none is a
# "MISSING:" marker left by tests/model/convert.sh or by this script. Else
# it writes such a marker to OUT and succeeds, so a machine without the
# checkpoint still builds; the test that uses OUT names what is missing.
out=$1
shift
missing=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ ! -e "$1" ]; then
        missing="$missing $1"
    elif head -c 8 "$1" | grep -q '^MISSING:'; then
        missing="$missing $1 ($(head -c 300 "$1"))"
    fi
    shift
done
[ "$1" = "--" ] && shift
if [ -n "$missing" ]; then
    echo "MISSING:$missing (set BLLM_SHARED / BLLM_CACHE or the shared_dir / cache_dir options, then reconfigure)" > "$out"
    echo "build_model.sh: not building $out, missing:$missing" >&2
    exit 0
fi
rm -f "$out"
exec "$@"
