"""Checks the f16/bf16 conversions of runtime/format/types.c against numpy.

f16: numpy's float16 is the reference both ways (its float32 -> float16 cast
rounds to nearest even, subnormals included). bf16 has no numpy type, so
f32 -> bf16 is checked against the definition of round-to-nearest-even: the
result must be whichever neighbouring bf16 value is closer (distances
computed exactly in float64), the even one on a tie, with values past the
largest bf16 rounding to infinity. NaN must stay NaN with its sign.

usage: test_types_conv.py path/to/types-dump
"""
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(f"FAIL: numpy is missing from {sys.executable}; configure meson with "
             "-Dpython=<a venv with numpy>/bin/python (e.g. $BLLM_CACHE/venv)")

failures = 0


def run(helper, mode, data=b""):
    r = subprocess.run([helper, mode], input=data, capture_output=True, check=False)
    if r.returncode != 0:
        sys.exit(f"FAIL: {helper} {mode} exited {r.returncode}: {r.stderr.decode()}")
    return r.stdout


def report(name, got, want, inputs, n_checked):
    """got/want: unsigned arrays of result bits; inputs: input bits."""
    global failures
    bad = np.nonzero(got != want)[0]
    status = "ok" if bad.size == 0 else "FAIL"
    print(f"{name}: {n_checked} inputs, {bad.size} mismatches {status}")
    for i in bad[:10]:
        print(f"    input {int(inputs[i]):#010x}: got {int(got[i]):#06x}, want {int(want[i]):#06x}")
    if bad.size:
        failures += 1


def check_nan(name, in_nan, out_is_nan, in_sign, out_sign):
    global failures
    n = int(in_nan.sum())
    bad = np.nonzero(in_nan & (~out_is_nan | (in_sign != out_sign)))[0]
    print(f"{name}: {n} NaN inputs, {bad.size} not NaN of the same sign {'ok' if not bad.size else 'FAIL'}")
    if bad.size:
        failures += 1


def f16_inputs(rng):
    """f32 values that probe every f16 rounding boundary, plus random ones."""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    nxt = np.append(halves[1:], 65520.0)  # 65520: midpoint to "next" is overflow edge
    mids = ((halves + nxt) / 2).astype(np.float32)  # exact: 12 significant bits
    near = [halves.astype(np.float32), mids,
            np.nextafter(mids, np.float32(0)), np.nextafter(mids, np.float32(np.inf))]
    special = np.array([0.0, 65504.0, 65519.996, 65520.0, 65536.0, 1e10, 3.4028235e38,
                        2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -14, 2.0 ** -26,
                        1.401298464e-45, 1.17549435e-38, np.inf, np.nan], dtype=np.float32)
    logu = (2.0 ** rng.uniform(-30, 17, 200000)).astype(np.float32)
    pos = np.concatenate(near + [special, logu])
    rnd = rng.integers(0, 2 ** 32, 1000000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    nans = np.array([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7F802000],
                    dtype=np.uint32).view(np.float32)
    return np.concatenate([pos, -pos, rnd, nans, -nans])


def bf16_inputs(rng):
    tops = np.arange(0, 0x7F80, dtype=np.uint32) << 16  # every finite bf16 magnitude
    near = [tops, tops | 0x8000, tops | 0x7FFF, tops | 0x8001, tops | 0xFFFF]
    pos = np.concatenate(near + [np.array([0x7F800000], dtype=np.uint32)])
    rnd = rng.integers(0, 2 ** 32, 1000000, dtype=np.uint64).astype(np.uint32)
    nans = np.array([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7F80FFFF], dtype=np.uint32)
    return np.concatenate([pos, pos | 0x80000000, rnd, nans, nans | 0x80000000]).view(np.float32)


def bf16_rne(x):
    """Round-to-nearest-even f32 -> bf16 bits, by comparing distances."""
    bits = x.view(np.uint32)
    sign = bits & np.uint32(0x80000000)
    mag = bits & np.uint32(0x7FFFFFFF)
    lo = mag & np.uint32(0xFFFF0000)
    hi = lo + np.uint32(0x10000)
    inf = mag == 0x7F800000
    fin_lo = np.where(inf, 0, lo)  # infinities map to themselves (below)
    a = np.where(inf, 0.0, np.abs(x.astype(np.float64)))
    v_lo = fin_lo.view(np.float32).astype(np.float64)
    # the neighbour above the largest finite bf16 is 2^128 (rounds to inf)
    v_hi = np.where(hi >= 0x7F800000, 2.0 ** 128,
                    np.where(hi >= 0x7F800000, 0, hi).view(np.float32).astype(np.float64))
    d_lo, d_hi = a - v_lo, v_hi - a
    even_lo = ((lo >> 16) & 1) == 0
    pick = np.where(d_lo < d_hi, lo, np.where(d_lo > d_hi, hi, np.where(even_lo, lo, hi)))
    pick = np.where(inf, mag, pick)
    return ((sign | pick) >> 16).astype(np.uint16)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: test_types_conv.py path/to/types-dump")
    helper = sys.argv[1]
    rng = np.random.default_rng(20240601)

    # f16 -> f32: all 65536 inputs
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    got = np.frombuffer(run(helper, "f16-to-f32"), dtype=np.uint32)
    want = h.view(np.float16).astype(np.float32).view(np.uint32)
    hnan = np.isnan(h.view(np.float16))
    report("f16->f32 (all non-NaN halves)", got[~hnan], want[~hnan], h[~hnan], int((~hnan).sum()))
    check_nan("f16->f32", hnan, np.isnan(got.view(np.float32)), h >> 15, got >> 31)

    # bf16 -> f32: by definition the upper half of the f32
    got = np.frombuffer(run(helper, "bf16-to-f32"), dtype=np.uint32)
    want = h.astype(np.uint32) << 16
    bnan = np.isnan(want.view(np.float32))
    report("bf16->f32 (all non-NaN)", got[~bnan], want[~bnan], h[~bnan], int((~bnan).sum()))
    check_nan("bf16->f32", bnan, np.isnan(got.view(np.float32)), h >> 15, got >> 31)

    # f32 -> f16
    x = f16_inputs(rng)
    got = np.frombuffer(run(helper, "f32-to-f16", x.tobytes()), dtype=np.uint16)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    xnan = np.isnan(x)
    xb = x.view(np.uint32)
    report("f32->f16 (boundaries, subnormals, random bits)", got[~xnan], want[~xnan], xb[~xnan],
           int((~xnan).sum()))
    check_nan("f32->f16", xnan, np.isnan(got.view(np.float16)), xb >> 31, got >> 15)

    # f32 -> bf16
    x = bf16_inputs(rng)
    got = np.frombuffer(run(helper, "f32-to-bf16", x.tobytes()), dtype=np.uint16)
    xnan = np.isnan(x)
    xb = x.view(np.uint32)
    want = bf16_rne(x[~xnan])
    report("f32->bf16 (every bf16 midpoint +-1ulp, random bits)", got[~xnan], want, xb[~xnan],
           int((~xnan).sum()))
    gotf = (got.astype(np.uint32) << 16).view(np.float32)
    check_nan("f32->bf16", xnan, np.isnan(gotf), xb >> 31, got >> 15)

    if failures:
        print(f"FAILED: {failures} check(s)")
        sys.exit(1)
    print("all conversion checks passed")


if __name__ == "__main__":
    main()
