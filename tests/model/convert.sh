#!/bin/sh
# usage: convert.sh OUT INPUT... -- COMMAND...
# Runs COMMAND (a bllm-convert call writing OUT) when every INPUT exists.
# When one is missing it writes a short "MISSING:" marker to OUT instead and
# succeeds, so a machine without the checkpoint still builds; the test that
# uses OUT reads the marker, names the missing file and fails.
out=$1
shift
missing=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    [ -e "$1" ] || missing="$missing $1"
    shift
done
[ "$1" = "--" ] && shift
if [ -n "$missing" ]; then
    echo "MISSING:$missing (set BLLM_SHARED / BLLM_CACHE or the shared_dir / cache_dir options, then reconfigure)" > "$out"
    echo "convert.sh: not converting $out, missing:$missing" >&2
    exit 0
fi
rm -f "$out"
exec "$@"
