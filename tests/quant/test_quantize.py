"""bllm-quantize's calibrated methods end to end on stories260K (a real tiny
Llama; its attention matrices fit the packed types, its 172-wide FFN does
not and stays f16), read back with an independent .stb reader:

- pb-llm, billm and onebit write a loadable model whose provenance records the
  method, the calibration file's SHA-256 (checked with hashlib), windows,
  length, seed and options; the same command twice gives the same bytes,
  another seed other bytes; the model generates text;
- the matrices are stored in the method's type, with the documented size
  (billm: docs/format.md's formula; pb8: b1g bytes plus a companion with
  10% of the weights; onebit: signs plus fp16 row and column vectors);
- activations kept in f16 between stages (what a model too large for f32
  activations gets) give a model close to the f32 one;
- bad input is refused with a clear message, a non-zero exit and no output
  file: a calibration file shorter than one window, --calib-samples 0, an
  input whose matrices are already packed, an unknown method or option, a
  missing calibration file, a --type the method does not store, negative
  onebit fitting steps, a bad N:M or allocation rule, a block that is not
  a multiple of 64;
- stbllm and pbs2p store stbllm matrices of the documented size, record
  N:M and how N was allocated, and their per-layer N averages the target;
- the calibrated methods weigh the tied embedding/head (q4nl by default)
  by the importance of its columns: against bllm-convert's q4nl of the same
  weights (the unweighted rule) some blocks' scales differ, every value
  still on the level nearest to its source at its block's scale.

usage: test_quantize.py BLLM_QUANTIZE BLLM_RUN PACKED_B1G.stb
"""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["BLLM_SOURCE"], "tests", "bench"))
from stb_py import Stb  # noqa: E402

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

SHARED = os.environ.get("BLLM_SHARED", os.path.join(os.environ["BLLM_SOURCE"], "..", "shared"))
STORIES = os.path.join(SHARED, "data", "stories260K")
CALIB = os.path.join(SHARED, "data", "wikitext-2", "valid.tokens.txt")

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}")
    return cond


def run(args, timeout=120):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout * TIMEOUT_SCALE)


def quantize(tool, out, *extra, quiet=True):
    args = [tool, os.path.join(STORIES, "stories260K.bin"), "--tokenizer", os.path.join(STORIES, "tok512.bin"),
            "-o", out, "-t", "2", "--calib", CALIB, "--calib-samples", "4", "--calib-len", "128", *extra]
    return run(args + (["-q"] if quiet else []))


def billm_bytes(rows, cols):
    return rows // 32 * (cols // 128 * 1536 + (1024 if cols % 128 else 0)) + cols // 8


def test_methods(tool, runner, d):
    calib_sha = hashlib.sha256(open(CALIB, "rb").read()).hexdigest()
    for method, typ in (("pb-llm", 12), ("billm", 14), ("onebit", 11)):
        out = os.path.join(d, f"{method}.stb")
        r = quantize(tool, out, "--method", method, "--seed", "7", quiet=False)
        if not check(r.returncode == 0, f"{method}: exit {r.returncode}: {r.stderr}"):
            continue
        check("| matrix |" in r.stdout and "| blk.0.attn_q.weight |" in r.stdout and "rel. output error" in r.stdout
              and "**all 20 matrices**" in r.stdout, f"{method}: no closing table in\n{r.stdout}")
        s = Stb(out)
        m = s.meta
        check(m.get("provenance.quantization.method") == method, f"{method}: method key {m.get('provenance.quantization.method')}")
        check(m.get("provenance.quantization.calib_sha256") == calib_sha,
              f"{method}: calib sha256 {m.get('provenance.quantization.calib_sha256')} != {calib_sha}")
        check(m.get("provenance.quantization.calib_samples") == 4 and m.get("provenance.quantization.calib_len") == 128
              and m.get("provenance.quantization.seed") == 7,
              f"{method}: windows/len/seed {[m.get(k) for k in ('provenance.quantization.calib_samples', 'provenance.quantization.calib_len', 'provenance.quantization.seed')]}")
        check("--method " + method in m.get("provenance.options", ""), f"{method}: options {m.get('provenance.options')}")
        if method == "onebit":
            check(m.get("provenance.quantization.onebit_fit_iters") == 10,
                  f"onebit: fit steps {m.get('provenance.quantization.onebit_fit_iters')}")
        packed = [n for n, t in s.tensors.items() if t["type"] == typ]
        check(len(packed) == 20, f"{method}: {len(packed)} matrices of type {typ}, want the 20 attention matrices")
        for n in packed:
            rows, cols = s.tensors[n]["dims"]
            if typ == 14:
                check(s.tensors[n]["nbytes"] == billm_bytes(rows, cols), f"{n}: {s.tensors[n]['nbytes']} bytes")
            elif typ == 11:
                # signs, fp16 g per row, fp16 h per column (docs/format.md)
                check(s.tensors[n]["nbytes"] == rows * cols // 8 + 2 * rows + 2 * cols, f"{n}: onebit size")
            else:
                comp = s.tensors.get(n + ".salient")
                check(s.tensors[n]["nbytes"] == rows * cols // 2048 * 320, f"{n}: b1g part size")
                if check(comp is not None, f"{n}: no companion"):
                    nnz = (comp["nbytes"] - 24 - 4 * (rows + 1) - 2 * rows) // 3
                    check(nnz == round(0.1 * rows * cols), f"{n}: {nnz} salient weights, want 10%")
        check(all(s.tensors[n]["type"] == 1 for n in s.tensors if len(s.tensors[n]["dims"]) == 2 and "ffn_" in n),
              f"{method}: the FFN matrices (172 wide) should stay f16")
        g = run([runner, "-m", out, "-p", "Once upon a time", "-n", "16", "--temp", "0"])
        check(g.returncode == 0 and len(g.stdout) > 20, f"{method}: bllm-run exit {g.returncode}: {g.stderr}")
        again = os.path.join(d, f"{method}-again.stb")
        quantize(tool, again, "--method", method, "--seed", "7")
        check(open(out, "rb").read() == open(again, "rb").read(), f"{method}: the same command gave other bytes")
        other = os.path.join(d, f"{method}-seed8.stb")
        quantize(tool, other, "--method", method, "--seed", "8")
        check(open(out, "rb").read() != open(other, "rb").read(), f"{method}: another seed gave the same bytes")
        if method == "billm":
            check_weighted_head(tool, s, d)
        print(f"{method}: {len(packed)} matrices, provenance, size and determinism checked")


Q4NL_LEVELS = [-127, -102, -81, -64, -49, -35, -22, -9, 3, 16, 29, 42, 57, 73, 91, 113]  # docs/format.md


def check_weighted_head(tool, s, d):
    import numpy as np
    t = s.tensors.get("token_embd.weight")
    if not check(t is not None and t["type"] == 19 and "output.weight" not in s.tensors,
                 f"billm: the tied embedding/head should be q4nl by default ({t})"):
        return
    conv = os.path.join(os.path.dirname(tool), "bllm-convert")
    rule, f32 = os.path.join(d, "rule-q4nl.stb"), os.path.join(d, "src-f32.stb")
    src = [os.path.join(STORIES, "stories260K.bin"), "--tokenizer", os.path.join(STORIES, "tok512.bin"), "-q"]
    r1 = run([conv, *src, "-o", rule, "--type", "f32", "--head-type", "q4nl"])
    r2 = run([conv, *src, "-o", f32, "--type", "f32"])
    if not check(r1.returncode == 0 and r2.returncode == 0, f"bllm-convert: {r1.stderr} {r2.stderr}"):
        return

    def blocks(stb):
        tt = stb.tensors["token_embd.weight"]
        start = stb.data_offset + tt["offset"]
        return np.frombuffer(stb.raw[start:start + tt["nbytes"]], np.uint8).reshape(-1, 18)

    ours, theirs = blocks(s), blocks(Stb(rule))
    sf = Stb(f32)
    tf = sf.tensors["token_embd.weight"]
    w = np.frombuffer(sf.raw[sf.data_offset + tf["offset"]:][:tf["nbytes"]], np.float32).reshape(-1, 32)
    dq = ours[:, :2].copy().view(np.float16).astype(np.float32)
    codes = np.concatenate([ours[:, 2:] & 15, ours[:, 2:] >> 4], axis=1)
    lv = np.array(Q4NL_LEVELS, np.float32)
    err = np.abs(dq * lv[codes] - w)
    nearest = np.abs(dq[:, :, None] * lv[None, None, :] - w[:, :, None]).min(axis=2)
    n_moved = int((ours[:, :2] != theirs[:, :2]).any(axis=1).sum())
    n_far = int((err > nearest * (1 + 1e-6) + 1e-30).sum())
    check(n_moved > 0 and n_far == 0,
          f"billm head: {n_moved} of {len(ours)} block scales moved from the rule's (want some), "
          f"{n_far} values off their nearest level (want 0)")
    print(f"billm head: {n_moved} of {len(ours)} q4nl block scales chosen by importance")


def stbllm_bytes(rows, cols):
    return rows // 32 * (cols // 128 * 2176 + (1408 if cols % 128 else 0)) + cols // 8


def test_nm(tool, d):
    """stbllm and pbs2p: the type, the N:M provenance, N per layer averaging
    the target under each allocation rule (a probe pass of the float model
    for outlier and search, none for uniform)."""
    cases = [("stbllm", "4:8", None, "outlier"), ("pbs2p", "6:8", None, "search"),
             ("stbllm", "5:8", "uniform", "uniform")]
    for method, nm, alloc, want_alloc in cases:
        out = os.path.join(d, f"{method}-{nm.replace(':', '')}.stb")
        extra = ["--nm-alloc", alloc] if alloc else []
        r = quantize(tool, out, "--method", method, "--nm", nm, *extra)
        what = f"{method} {nm} {want_alloc}"
        if not check(r.returncode == 0, f"{what}: exit {r.returncode}: {r.stderr}"):
            continue
        s = Stb(out)
        m = s.meta
        n, mm = (int(v) for v in nm.split(":"))
        check(m.get("provenance.quantization.nm_n") == n and m.get("provenance.quantization.nm_m") == mm,
              f"{what}: nm_n/nm_m {m.get('provenance.quantization.nm_n')}/{m.get('provenance.quantization.nm_m')}")
        check(m.get("provenance.quantization.nm_alloc") == want_alloc,
              f"{what}: nm_alloc {m.get('provenance.quantization.nm_alloc')}")
        layers = m.get("provenance.quantization.layer_nm_n")
        if want_alloc == "uniform":
            check(layers is None and "N:M per layer" not in r.stdout, f"{what}: per-layer N written: {layers}")
        elif check(layers is not None and "N:M per layer" in r.stdout, f"{what}: no per-layer N"):
            ns = [int(v) for v in layers.split(",")]
            check(len(ns) == 5 and sum(ns) == 5 * n and all(1 <= v <= mm for v in ns),
                  f"{what}: per-layer N {ns} does not average {n} over the 5 layers")
        packed = [t for t in s.tensors if s.tensors[t]["type"] == 15]
        check(len(packed) == 20, f"{what}: {len(packed)} stbllm matrices, want the 20 attention matrices")
        for t in packed:
            rows, cols = s.tensors[t]["dims"]
            check(s.tensors[t]["nbytes"] == stbllm_bytes(rows, cols), f"{what}: {t}: {s.tensors[t]['nbytes']} bytes")
    print(f"{len(cases)} N:M quantizations: type, sizes, provenance and per-layer N checked")


def test_nm_refill(tool, d):
    """--nm-refill (the authors' code, for comparison): provenance says so
    and the model is not N:M-sparse, unlike the default (test_nm_model.c)."""
    import numpy as np
    out, deq = os.path.join(d, "refill.stb"), os.path.join(d, "refill-f32.stb")
    r = quantize(tool, out, "--method", "stbllm", "--nm", "4:8", "--nm-alloc", "uniform", "--nm-refill")
    if not check(r.returncode == 0, f"--nm-refill: exit {r.returncode}: {r.stderr}"):
        return
    check(Stb(out).meta.get("provenance.quantization.nm_refill") == 1, "--nm-refill: provenance key")
    r = run([tool, "--dequantize", out, "-o", deq, "-q"])
    if not check(r.returncode == 0, f"--dequantize of the refilled model: {r.stderr}"):
        return
    s, over = Stb(deq), 0
    for name, t in s.tensors.items():
        if name.startswith("blk.") and len(t["dims"]) == 2 and "attn" in name:
            w = np.frombuffer(s.raw, np.float32, t["dims"][0] * t["dims"][1], s.data_offset + t["offset"])
            over += int(((w.reshape(-1, 8) != 0).sum(axis=1) > 4).sum())
    check(over > 0, "--nm-refill: every group of 8 still keeps at most 4 (the refill did nothing)")
    r = quantize(tool, os.path.join(d, "x.stb"), "--method", "billm", "--nm-refill")
    check(r.returncode == 2 and "--nm-refill" in r.stderr, f"--nm-refill with billm: exit {r.returncode}")
    print(f"--nm-refill: {over} groups of 8 keep more than 4 weights")


def rms_error(stdout):
    for line in stdout.splitlines():
        if line.startswith("| **all "):
            return float(line.split("|")[6].split()[0])
    return None


def test_f16_activations(tool, d):
    errs = {}
    for act in ("f32", "f16"):
        r = quantize(tool, os.path.join(d, f"act-{act}.stb"), "--method", "billm", "--calib-activations", act)
        if check(r.returncode == 0, f"--calib-activations {act}: exit {r.returncode}: {r.stderr}"):
            check(f"activations in {act}" in r.stdout, f"--calib-activations {act}: not reported in {r.stdout}")
            errs[act] = rms_error(r.stdout)
    if len(errs) == 2 and check(None not in errs.values(), f"no model row in the tables: {errs}"):
        check(abs(errs["f16"] - errs["f32"]) <= 0.05 * errs["f32"],
              f"f16 activations: output error {errs['f16']} vs {errs['f32']} with f32")
        print(f"billm output error with f32 activations {errs['f32']}, f16 {errs['f16']}")


def test_refusals(tool, packed, d):
    short = os.path.join(d, "short.txt")
    with open(short, "w") as f:
        f.write("far too short for a window of 128 tokens\n")
    out = os.path.join(d, "bad.stb")
    stories = [os.path.join(STORIES, "stories260K.bin"), "--tokenizer", os.path.join(STORIES, "tok512.bin")]
    cases = [
        ("calibration file shorter than one window",
         stories + ["-o", out, "--method", "billm", "--calib", short, "--calib-len", "128"], "fewer than one window"),
        ("--calib-samples 0", stories + ["-o", out, "--method", "billm", "--calib-samples", "0"], "--calib-samples"),
        ("already packed input", [packed, "-o", out, "--method", "pb-llm", "--calib", CALIB], "already packed"),
        ("unknown method", stories + ["-o", out, "--method", "gptq9"], "unknown --method"),
        ("unknown option", stories + ["-o", out, "--method", "billm", "--frobnicate"], "unknown option"),
        ("missing calibration file", stories + ["-o", out, "--method", "billm", "--calib", os.path.join(d, "nope.txt")],
         "nope.txt"),
        ("type the method does not store", stories + ["-o", out, "--method", "billm", "--type", "b1g"], "stores billm"),
        ("negative onebit fitting steps", stories + ["-o", out, "--method", "onebit", "--onebit-fit", "-1"],
         "--onebit-fit"),
        ("N above M", stories + ["-o", out, "--method", "stbllm", "--nm", "9:8"], "--nm"),
        ("M not 4, 8 or 16", stories + ["-o", out, "--method", "pbs2p", "--nm", "3:7"], "--nm"),
        ("unknown N:M allocation", stories + ["-o", out, "--method", "stbllm", "--nm-alloc", "greedy"], "--nm-alloc"),
        ("block not a multiple of 64", stories + ["-o", out, "--method", "pb-llm", "--block", "100"], "multiple of 64"),
    ]
    for what, args, needle in cases:
        r = run([tool] + args)
        check(r.returncode != 0, f"{what}: exit 0")
        check(needle in r.stderr, f"{what}: message lacks '{needle}': {r.stderr.strip()}")
        check(not os.path.exists(out), f"{what}: left {out} behind")
        if os.path.exists(out):
            os.unlink(out)
    print(f"{len(cases)} bad inputs refused, no output left")


def main():
    tool, runner, packed = sys.argv[1:4]
    for p in (os.path.join(STORIES, "stories260K.bin"), CALIB):
        if not os.path.exists(p):
            print(f"FAIL: missing {p} (the shared data folder, see BLLM_SHARED)")
            return 1
    with tempfile.TemporaryDirectory() as d:
        test_methods(tool, runner, d)
        test_nm(tool, d)
        test_nm_refill(tool, d)
        test_f16_activations(tool, d)
        test_refusals(tool, packed, d)
    print("PASS" if failures == 0 else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
