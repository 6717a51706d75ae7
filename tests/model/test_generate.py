#!/usr/bin/env python3
"""Greedy generation end to end: bllm-run on stories260K from BOS must print
exactly the text PyTorch produced (stories260K_greedy.txt, written by
make_golden.py from a transformers model, 256 greedy tokens), which itself
begins with karpathy's published llama2.c sample.

usage: test_generate.py BLLM_RUN MODEL.stb EXPECTED.txt
"""
import os
import subprocess
import sys
from pathlib import Path

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

PUBLISHED_START = ("Once upon a time, there was a little girl named Lily. "
                   "She loved to play outside in the park.")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    run, model, expected_path = sys.argv[1:]
    head = Path(model).read_bytes()[:512] if Path(model).exists() else b"MISSING: " + model.encode()
    if head.startswith(b"MISSING:"):
        print(f"FAIL: {model} was not converted: {head.decode(errors='replace').strip()}")
        return 1
    expected = Path(expected_path).read_text(encoding="utf-8")
    if not expected.startswith(PUBLISHED_START):
        print(f"FAIL: {expected_path} does not start with the published sample")
        return 1
    cmd = [run, "-m", model, "-n", "256", "--temp", "0", "-p", "", "-t", "2"]
    print("running:", " ".join(repr(c) if not c else c for c in cmd))
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=120 * TIMEOUT_SCALE)
    except subprocess.TimeoutExpired:
        print("FAIL: bllm-run took over 120 s")
        return 1
    if r.returncode != 0:
        print(f"FAIL: bllm-run exited {r.returncode}\n{r.stderr.decode(errors='replace')}")
        return 1
    got = r.stdout.decode("utf-8", errors="replace")
    if got.strip() == expected.strip():
        print(f"PASS: {len(expected.strip())} bytes of greedy text match PyTorch "
              f"(starts: {expected[:60]!r})")
        return 0
    a, b = got.strip(), expected.strip()
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    print(f"FAIL: output differs from the PyTorch greedy text at byte {i} "
          f"(got {len(a)} bytes, expected {len(b)})")
    print(f"  expected ...{b[max(0, i - 40):i + 40]!r}")
    print(f"  got      ...{a[max(0, i - 40):i + 40]!r}")
    print("--- full output ---\n" + got + "\n--- stderr ---\n" + r.stderr.decode(errors="replace"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
