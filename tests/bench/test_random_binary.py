"""bllm-random with packed binary types, against docs/format.md.

usage: test_random_binary.py BLLM_BENCH BLLM_RANDOM

For `bllm-random smollm2-135m --type b1g` and `--type nm48`:
- the directory (read by stb_py.py, not by the library): every blk.* matrix
  in the packed type with nbytes equal to the format's formula (b1g 320
  bytes, nm48 512 bytes per 32 x 64 tile), token_embd q4nl (the default
  of binary models: 18 bytes per 32 values), norms f32;
- the bytes are a plausible random decomposition: b1g alphas finite fp16 in
  std * [0.75, 1.25], about half the sign bits set; every nm48 group mask
  keeps exactly 4 of 8 and all C(8, 4) = 70 patterns are used;
- bllm-bench loads the file and reports bits/weight of the linear layers
  equal to the formula (1.25, 2.0) and of all tensors equal to the bytes
  computed here.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stb_py import Stb  # noqa: E402

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

failures = []

# docs/format.md, "Tensor types": type id, bytes per 32 x 64 tile.
FORMAT = {"b1g": (4, 320), "nm48": (8, 512)}
F32, F16, Q4NL = 0, 1, 19
STD = 0.02


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def expected_bytes(type_id, tile_bytes, ttype, dims):
    if len(dims) == 1:
        return 4 * dims[0]
    rows, cols = dims
    if ttype == type_id:
        return (rows // 32) * (cols // 64) * tile_bytes
    if ttype == Q4NL:
        return rows * (cols // 32) * 18
    return 2 * rows * cols  # f16


def check_b1g(s, name):
    t = s.tensors[name]
    start = s.data_offset + t["offset"]
    tiles = np.frombuffer(s.raw[start:start + t["nbytes"]], dtype=np.uint8).reshape(-1, 320)
    alpha = tiles[:, 256:].copy().view(np.float16).astype(np.float32)
    check(bool(np.all(np.isfinite(alpha))) and float(alpha.min()) >= 0.75 * STD * 0.999 and
          float(alpha.max()) <= 1.25 * STD * 1.001, f"{name}: alphas outside std*[0.75, 1.25]: "
          f"{alpha.min()}..{alpha.max()}")
    ones = np.unpackbits(tiles[:, :256]).mean()
    check(abs(float(ones) - 0.5) < 0.01, f"{name}: {ones:.3f} of the sign bits set")


def check_nm48(s, name):
    t = s.tensors[name]
    start = s.data_offset + t["offset"]
    tiles = np.frombuffer(s.raw[start:start + t["nbytes"]], dtype=np.uint8).reshape(-1, 512)
    allc = tiles[:, :256].ravel()  # one kept mask byte per row and 8 columns
    pop = np.unpackbits(allc).reshape(-1, 8).sum(-1)
    check(bool((pop == 4).all()), f"{name}: {int((pop != 4).sum())} groups do not keep 4 of 8")
    check(len(np.unique(allc)) == math.comb(8, 4), f"{name}: only {len(np.unique(allc))} of 70 patterns used")
    scales = tiles[:, 32 * 12:].copy().view(np.float16).astype(np.float32).reshape(-1, 2, 32)
    alpha, mu = scales[:, 0], scales[:, 1]
    check(float(alpha.min()) > 0 and float(alpha.max()) <= 1.25 * STD * 1.001, f"{name}: alpha out of range")
    check(float(np.abs(mu).max()) <= 0.1 * STD * 1.001, f"{name}: mu out of range")


def one(bench, random, tmp, tname):
    type_id, tile_bytes = FORMAT[tname]
    out = os.path.join(tmp, f"smol-{tname}.stb")
    r = subprocess.run([random, "smollm2-135m", "--type", tname, "-o", out, "-q"], capture_output=True, text=True,
                       timeout=60 * TIMEOUT_SCALE)
    check(r.returncode == 0, f"bllm-random --type {tname} exited {r.returncode}: {r.stderr}")
    if r.returncode:
        return
    s = Stb(out)
    lin_bytes = lin_params = all_bytes = all_params = 0
    for name, t in s.tensors.items():
        dims, n = t["dims"], s.numel(name)
        block = name.startswith("blk.") and len(dims) == 2
        want_type = F32 if len(dims) == 1 else type_id if block else Q4NL
        check(t["type"] == want_type, f"{tname}: {name} has type {t['type']}, expected {want_type}")
        want = expected_bytes(type_id, tile_bytes, want_type, dims)
        check(t["nbytes"] == want, f"{tname}: {name} is {t['nbytes']} bytes, formula {want}")
        all_bytes += want
        all_params += n
        if block:
            lin_bytes += want
            lin_params += n
    check(lin_params > 100_000_000, f"{tname}: only {lin_params} linear weights")
    bpw = 8 * lin_bytes / lin_params
    check(bpw == 8 * tile_bytes / (32 * 64), f"{tname}: formula gives {bpw} for the whole model")
    (check_b1g if tname == "b1g" else check_nm48)(s, "blk.3.ffn_down.weight")
    s.raw.close()

    r = subprocess.run([bench, "-m", out, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "-o", "json"],
                       capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE)
    check(r.returncode == 0, f"bllm-bench on random {tname} exited {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        recs = json.loads(r.stdout)
        check(len(recs) == 2, f"{tname}: {len(recs)} records")
        for rec in recs:
            check(rec["bpw_linear"] == bpw, f"{tname}: bllm-bench bpw_linear {rec['bpw_linear']}, formula {bpw}")
            check(abs(rec["bpw_all"] - 8 * all_bytes / all_params) < 1e-12,
                  f"{tname}: bpw_all {rec['bpw_all']}, expected {8 * all_bytes / all_params}")
            check(rec["linear_params"] == lin_params, f"{tname}: linear_params {rec['linear_params']}")
            check(rec["ts_mean"] > 0, f"{tname}: {rec['test']} at {rec['ts_mean']} t/s")
        print(f"{tname}: bpw_linear {recs[0]['bpw_linear']} (formula {bpw}), bpw_all {recs[0]['bpw_all']:.4f}")
    os.remove(out)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bench, random = sys.argv[1:3]
    for p in (bench, random):
        if not os.path.exists(p):
            print(f"MISSING: {p}; build the tree", file=sys.stderr)
            sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        for tname in ("b1g", "nm48"):
            one(bench, random, tmp, tname)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
