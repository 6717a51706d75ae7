"""What stbllm's state planes would cost if stored more tightly.

stbllm stores 2 bits of state per weight outside salient columns (planes A
and B: pruned or one of three magnitude regions) and 1 inside them (A:
kept; B there is the residual sign, a value bit, not a state). This reads
the planes of an stbllm .stb and reports the bits per weight those states
carry, given which columns are salient (stored apart, 1/rows bit each):
  stored      2 per non-salient weight, 1 per salient one
  H1          the empirical entropy of one weight's state
  H8          of the joint state of each aligned group of 8 weights of a
              row (where the N:M structure shows), per weight
  enumerative a fixed-rate code per group of 8 without salient columns:
              ceil(log2 C(8, N)) bits for which N are kept plus
              ceil(N log2 3) for their regions (N of the layer); groups
              with a salient column as stored
An entropy coder would approach H8; the enumerative code keeps each group
fixed-size, so a kernel could still find any group without decoding the
ones before it.
  usage: stbllm_states.py MODEL.stb [--json]"""
import json
import math
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bench"))
from stb_py import Stb  # noqa: E402

STBLLM = 15


def plane_bits(p):
    """(n, 256) plane bytes -> (n, 32, 64) bits (docs/format.md, the sign tile)."""
    q = p.reshape(-1, 16, 16)  # [.., quad, i]
    bits = (q[..., None] >> np.arange(8, dtype=np.uint8)) & 1  # [.., quad, i, 8]
    lo = bits[..., 0:4].transpose(0, 2, 1, 3).reshape(-1, 16, 64)
    hi = bits[..., 4:8].transpose(0, 2, 1, 3).reshape(-1, 16, 64)
    return np.concatenate([lo, hi], axis=1)


def states(raw, rows, cols):
    """Per weight: 0 pruned, 1..3 region (non-salient), 4 kept (salient);
    and the salient-column flags."""
    nb = cols // 128 + (cols % 128 > 0)
    halves = [2] * (cols // 128) + ([1] if cols % 128 else [])
    trb = sum(h * 768 + 640 for h in halves)
    A = np.zeros((rows, cols), np.uint8)
    B = np.zeros((rows, cols), np.uint8)
    offs_a, offs_b, where = [], [], []
    for rt in range(rows // 32):
        off = rt * trb
        for b in range(nb):
            for h in range(halves[b]):
                offs_a.append(off + h * 768 + 256)
                offs_b.append(off + h * 768 + 512)
                where.append((rt, 2 * b + h))
            off += halves[b] * 768 + 640
    idx = np.array(offs_a)[:, None] + np.arange(256)
    pa = plane_bits(raw[idx])
    pb = plane_bits(raw[np.array(offs_b)[:, None] + np.arange(256)])
    for k, (rt, g) in enumerate(where):
        A[32 * rt:32 * rt + 32, 64 * g:64 * g + 64] = pa[k]
        B[32 * rt:32 * rt + 32, 64 * g:64 * g + 64] = pb[k]
    flags = raw[(rows // 32) * trb:(rows // 32) * trb + cols // 8]
    sal = ((flags[:, None] >> np.arange(8, dtype=np.uint8)) & 1).reshape(-1)[:cols].astype(bool)
    ab = A * 2 + B  # 0 pruned, 1 r0, 2 r1, 3 r2
    st = np.where(sal[None, :], np.where(A == 1, 4, 0), ab)
    return st.astype(np.uint8), sal


def entropy(counter):
    n = sum(counter.values())
    return -sum(c / n * math.log2(c / n) for c in counter.values() if c)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    s = Stb(sys.argv[1])
    layer_n = s.meta.get("provenance.quantization.layer_nm_n")
    n_default = s.meta.get("provenance.quantization.nm_n", 8)
    per_layer = [int(v) for v in layer_n.split(",")] if layer_n else None
    c1, c8, c1s, c8s = Counter(), Counter(), Counter(), Counter()
    weights = enum_bits = stored_bits = 0
    kept = 0
    for name in s.order:
        t = s.tensors[name]
        if t["type"] != STBLLM:
            continue
        rows, cols = t["dims"]
        raw = np.frombuffer(s.raw, np.uint8, t["nbytes"], s.data_offset + t["offset"])
        st, sal = states(raw, rows, cols)
        weights += rows * cols
        kept += int((st != 0).sum())
        salr = np.broadcast_to(sal[None, :], (rows, cols))
        stored_bits += int((2 - salr).sum())
        # joint counts with the salient flags (known), for H(state | salient)
        j1 = st.astype(np.uint32) * 2 + salr
        c1.update(dict(enumerate(np.bincount(j1.reshape(-1), minlength=10).tolist())))
        c1s.update(dict(enumerate(np.bincount(salr.reshape(-1).astype(np.uint32), minlength=2).tolist())))
        g = st.reshape(rows, cols // 8, 8).astype(np.uint64)
        gs = salr.reshape(rows, cols // 8, 8).astype(np.uint64)
        w5 = 5 ** np.arange(8, dtype=np.uint64)
        w2 = 2 ** np.arange(8, dtype=np.uint64)
        smask = (gs * w2).sum(axis=2).reshape(-1)
        code = (g * w5).sum(axis=2).reshape(-1) * 256 + smask
        u, cnt = np.unique(code, return_counts=True)
        c8.update(dict(zip(u.tolist(), cnt.tolist())))
        u, cnt = np.unique(smask, return_counts=True)
        c8s.update(dict(zip(u.tolist(), cnt.tolist())))
        layer = int(name.split(".")[1]) if name.startswith("blk.") else 0
        n = per_layer[layer] if per_layer else n_default
        non_sal_groups = rows * int((~sal.reshape(-1, 8).any(axis=1)).sum())
        sal_groups = rows * (cols // 8) - non_sal_groups
        enum_bits += non_sal_groups * (math.ceil(math.log2(math.comb(8, n))) + math.ceil(n * math.log2(3)))
        sal_in_groups = int(sal.reshape(-1, 8)[sal.reshape(-1, 8).any(axis=1)].sum())
        enum_bits += rows * (2 * (8 * (sal_groups // rows) - sal_in_groups) + sal_in_groups)
    h1 = entropy(c1) - entropy(c1s)
    h8 = (entropy(c8) - entropy(c8s)) / 8
    shares = Counter()
    for k, v in c1.items():
        shares[k // 2] += v
    r = {"model": sys.argv[1], "weights": weights, "kept_share": kept / weights,
         "stored_bits": stored_bits / weights,
         "h1_bits": h1, "h8_bits": h8, "enumerative_bits": enum_bits / weights,
         "state_shares": {k: v / weights for k, v in sorted(shares.items())}}
    if "--json" in sys.argv:
        print(json.dumps(r))
    else:
        print(f"{r['model']}: {weights} weights in stbllm matrices, {100 * r['kept_share']:.1f}% kept")
        print(f"state bits per weight: stored {r['stored_bits']:.3f}, H1 {h1:.3f}, H8 {h8:.3f}, "
              f"enumerative {r['enumerative_bits']:.3f}")
        print("state shares (0 pruned, 1-3 regions, 4 salient kept):",
              ", ".join(f"{k} {v:.3f}" for k, v in r["state_shares"].items()))


if __name__ == "__main__":
    main()
