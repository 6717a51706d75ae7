#!/usr/bin/env python3
"""The scoring arithmetic of runtime/eval/perplexity.c against numpy float64:
per-row NLL (-log_softmax[target]), KL(base || model), top-1 agreement, and
the summary (mean, standard error as llama.cpp computes it, ppl, ppl error).

Rows are random with a fixed seed and cover: vocabularies of odd sizes (the
vector loops' tails), SmolLM2's 49152, huge logits (1e4: only a max-subtracted
log-sum-exp survives), a base very different from the model (so swapping the
KL direction changes the answer), a base equal to the model (KL exactly 0),
and rows without a base.

usage: test_ppl_math.py PPL_ROWS
"""
import os
import math
import struct
import subprocess
import sys
import tempfile

import numpy as np

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

TOL = 1e-10  # relative; the C side works in double from the same floats


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def make_rows(rng):
    rows = []  # (logits, base or None, target)
    for n in (1, 2, 3, 5, 7, 17, 512, 513, 49152, 49155):
        for scale in (1.0, 8.0):
            lg = (rng.standard_normal(n) * scale).astype(np.float32)
            base = (rng.standard_normal(n) * scale * 1.5 + 0.3).astype(np.float32)
            rows.append((lg, base, int(rng.integers(n))))
    big = (rng.standard_normal(1000) * 1e4).astype(np.float32)
    rows.append((big, (big + rng.standard_normal(1000).astype(np.float32) * 100).astype(np.float32),
                 int(np.argmax(big))))
    rows.append((big, big.copy(), int(np.argmax(big))))  # keeps the summary's ppl finite
    same = (rng.standard_normal(49152) * 4).astype(np.float32)
    rows.append((same, same.copy(), 11))
    # a clear argmax shared by both, and one where they differ
    a = rng.standard_normal(300).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    a[7] = b[7] = 50.0
    rows.append((a, b, 7))
    a2, b2 = a.copy(), b.copy()
    a2[8] = 60.0
    rows.append((a2, b2, 8))
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(1234)
    with_base = make_rows(rng)
    # the same rows without a base too (NLL only)
    rows = with_base + [(lg, None, t) for lg, _, t in with_base[:6]]
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(struct.pack("<I", len(rows)))
        for lg, base, t in rows:
            f.write(struct.pack("<IiI", lg.size, t, base is not None))
            f.write(lg.astype("<f4").tobytes())
            if base is not None:
                f.write(base.astype("<f4").tobytes())
        f.flush()
        r = subprocess.run([sys.argv[1], f.name], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
    if r.returncode:
        print(f"FAIL: ppl_rows exited {r.returncode}: {r.stderr}")
        return 1
    lines = r.stdout.split("\n")
    bad = 0
    nlls, kls, same_top = [], [], []
    for i, (lg, base, t) in enumerate(rows):
        nll, kl, same = lines[i].split()
        nll, kl, same = float(nll), float(kl), int(same)
        lp = log_softmax(lg)
        want_nll = -lp[t]
        want_kl, want_same, rev_kl = 0.0, 0, None
        if base is not None:
            lb = log_softmax(base)
            want_kl = float((np.exp(lb) * (lb - lp)).sum())
            rev_kl = float((np.exp(lp) * (lp - lb)).sum())
            want_same = int(np.argmax(lg) == np.argmax(base))
            kls.append(want_kl)
            same_top.append(want_same)
        nlls.append(want_nll)
        ok = (abs(nll - want_nll) <= TOL * max(1.0, abs(want_nll))
              and abs(kl - want_kl) <= TOL * max(1.0, abs(want_kl)) and same == want_same)
        if base is not None and np.array_equal(lg, base) and kl != 0.0:
            ok = False
        if not ok:
            bad += 1
            print(f"FAIL row {i} (n_vocab {lg.size}): nll {nll!r} want {want_nll!r}, KL {kl!r} want {want_kl!r} "
                  f"(reversed direction {rev_kl!r}), same_top {same} want {want_same}")
    # the summary
    parts = lines[len(rows)].split()
    assert parts[0] == "summary", lines[len(rows)]
    tokens = int(parts[1])
    got = dict(zip(["nll_mean", "nll_stderr", "ppl", "ppl_stderr", "kl_mean", "kl_stderr", "top1"],
                   map(float, parts[2:])))
    x, k = np.array(nlls), np.array(kls)

    def se(v):
        return math.sqrt(((v * v).mean() - v.mean() ** 2) / (v.size - 1))

    want = dict(nll_mean=x.mean(), nll_stderr=se(x), ppl=math.exp(x.mean()),
                ppl_stderr=math.exp(x.mean()) * se(x), kl_mean=k.mean(), kl_stderr=se(k),
                top1=float(np.mean(same_top)))
    if tokens != len(rows):
        bad += 1
        print(f"FAIL: summary counts {tokens} rows, expected {len(rows)}")
    for key, w in want.items():
        if abs(got[key] - w) > 1e-9 * max(1.0, abs(w)):
            bad += 1
            print(f"FAIL: summary {key} = {got[key]!r}, numpy {w!r}")
    if bad:
        return 1
    print(f"PASS: {len(rows)} rows (vocab 1..49155, logits up to 1e4) match numpy float64 within {TOL:g}; "
          f"identical rows give KL exactly 0; summary " + ", ".join(f"{k} {float(v):.6g}" for k, v in want.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
