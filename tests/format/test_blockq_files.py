"""q8, q6, q4 and q4nl in files (docs/format.md): q8's and q4's bytes are
llama.cpp's Q8_0 and Q4_0 blocks, so gguf-py (PyPI, code nobody here wrote)
must decode what bllm-convert --embed-type/--head-type writes to exactly
the values bllm-quantize --dequantize reads back; q6 (no llama.cpp twin)
is decoded here with numpy from docs/format.md's layout, and must equal
--dequantize too and lie within half a step of the source weights (or
past the block's 31 d, opposite its largest magnitude, no further than
the source); q4nl likewise from its level table, every value on the level
nearest to its source; the types land where asked (untied
and tied models, bllm-convert and bllm-random) and binary models default
to q4nl; the models run; a bad type name is refused; a q4/q4nl head,
repacked in memory where the kernels have a layout for it, scores and
decodes stories260K as the row-major head does.
  usage: test_blockq_files.py   (BLLM_BUILD, BLLM_SOURCE, BLLM_SHARED in the environment)"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

sys.path.insert(0, os.path.join(os.environ["BLLM_SOURCE"], "tests", "bench"))
sys.path.insert(0, os.path.join(os.environ["BLLM_SOURCE"], "tests", "convert"))
from stb_py import Stb  # noqa: E402
import gguf_fixture as fx  # noqa: E402

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))
TOOLS = os.path.join(os.environ["BLLM_BUILD"], "tools")
failures, checks = [], 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}")


def run(*args):
    return subprocess.run([os.path.join(TOOLS, args[0])] + list(args[1:]), capture_output=True, text=True, errors="replace",
                          timeout=120 * TIMEOUT_SCALE)


def raw(s, name):
    t = s.tensors[name]
    return np.frombuffer(s.raw, np.uint8, t["nbytes"], s.data_offset + t["offset"]), t


def f32(s, name):
    b, t = raw(s, name)
    return b.view(np.float32).reshape(t["dims"])


def blocks(s, name, type_id, block_bytes):
    """The tensor's blocks (after checking its type and size), their fp16 d
    as f32 (blocks x 1), and its shape."""
    b, t = raw(s, name)
    rows, cols = t["dims"]
    want = rows * cols // 32 * block_bytes
    check(t["type"] == type_id and t["nbytes"] == want,
          f"{name}: type {t['type']}, {t['nbytes']} bytes (want {type_id}, {want})")
    blk = b.reshape(-1, block_bytes)
    return blk, blk[:, :2].copy().view(np.float16).astype(np.float32), rows, cols


def convert(src, d, tag, embed, head):
    """bllm-convert with these embedding/head types and bllm-quantize
    --dequantize of the result: (path, Stb of it, Stb of its f32 values)."""
    out, deq = os.path.join(d, f"{tag}.stb"), os.path.join(d, f"{tag}-f32.stb")
    r = run("bllm-convert", src, "-o", out, "-q", "--type", "f16", "--embed-type", embed, "--head-type", head)
    check(r.returncode == 0, f"bllm-convert --embed-type {embed} --head-type {head}: {r.stderr}")
    r = run("bllm-quantize", "--dequantize", out, "-o", deq, "-q")
    check(r.returncode == 0, f"bllm-quantize --dequantize ({tag}): {r.stderr}")
    return out, Stb(out), Stb(deq)


with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "tiny.gguf")
    fx.write(src, seed=11)
    out, s, sd = convert(src, d, "q", "q8", "q4")
    for name, tid, qt, bpb in [("token_embd.weight", 16, Q.Q8_0, 34), ("output.weight", 17, Q.Q4_0, 18)]:
        b, t = raw(s, name)
        rows, cols = t["dims"]
        check(t["type"] == tid and t["nbytes"] == rows * cols // 32 * bpb,
              f"{name}: type {t['type']}, {t['nbytes']} bytes (want {tid}, {rows * cols // 32 * bpb})")
        ref = gguf.quants.dequantize(b.reshape(rows, cols // 32 * bpb), qt)
        ours = f32(sd, name)
        n_diff = int((ref.astype(np.float32).view(np.uint32) != ours.view(np.uint32)).sum())
        check(n_diff == 0, f"{name}: gguf-py's {qt.name} decoding differs from bllm's in {n_diff} values")
    g = run("bllm-run", "-m", out, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1")
    check(g.returncode == 0, f"bllm-run on the q8/q4 model: {g.stderr}")

    # q6: 26-byte blocks, d fp16 | 16 bytes of low nibbles (column j low,
    # j + 16 high) | 8 bytes of top bit pairs (byte j: columns j, j + 8,
    # j + 16, j + 24 at bits 0-1, 2-3, 4-5, 6-7); w = d * (q - 32)
    out6, s6, sd6 = convert(src, d, "q6", "q6", "q6")
    src32 = os.path.join(d, "src-f32.stb")
    r = run("bllm-convert", src, "-o", src32, "-q", "--type", "f32")
    check(r.returncode == 0, f"bllm-convert --type f32: {r.stderr}")
    s32 = Stb(src32)
    for name in ("token_embd.weight", "output.weight"):
        blk, dq, rows, cols = blocks(s6, name, 18, 26)
        ql, qh = blk[:, 2:18], blk[:, 18:26]
        low = np.concatenate([ql & 15, ql >> 4], axis=1).astype(np.int32)
        top = np.concatenate([(qh >> (2 * k)) & 3 for k in range(4)], axis=1).astype(np.int32)
        mine = (dq * (low + 16 * top - 32).astype(np.float32)).reshape(rows, cols)
        ours = f32(sd6, name)
        n_diff = int((mine.view(np.uint32) != ours.view(np.uint32)).sum())
        check(n_diff == 0, f"{name}: the layout decoded with numpy differs from bllm's q6 in {n_diff} values")
        w = f32(s32, name).reshape(-1, 32)
        ad = np.abs(dq)
        tol = 0.5 * ad + 32 * ad * 2.0**-11  # half a step, and d's fp16 rounding carried to level 32
        err = np.abs(mine.reshape(-1, 32) - w)
        n_far = int((err > tol + np.maximum(np.abs(w) - 31.5 * ad, 0) + 1e-30).sum())
        check(n_far == 0, f"{name}: {n_far} q6 values further than half a step from the source")
    g = run("bllm-run", "-m", out6, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1")
    check(g.returncode == 0, f"bllm-run on the q6 model: {g.stderr}")

    # q4nl: q4's 18-byte blocks, w = d * level[q], the levels as docs/format.md lists them
    levels = np.array([-127, -102, -81, -64, -49, -35, -22, -9, 3, 16, 29, 42, 57, 73, 91, 113], np.float32)
    outn, sn, sdn = convert(src, d, "q4nl", "q4nl", "q4nl")
    for name in ("token_embd.weight", "output.weight"):
        blk, dq, rows, cols = blocks(sn, name, 19, 18)
        codes = np.concatenate([blk[:, 2:] & 15, blk[:, 2:] >> 4], axis=1)
        mine = (dq * levels[codes]).reshape(rows, cols)
        n_diff = int((mine.view(np.uint32) != f32(sdn, name).view(np.uint32)).sum())
        check(n_diff == 0, f"{name}: the layout decoded with numpy differs from bllm's q4nl in {n_diff} values")
        w = f32(s32, name).reshape(-1, 32)
        nearest = np.abs(dq[:, :, None] * levels[None, None, :] - w[:, :, None]).min(axis=2)
        err = np.abs(mine.reshape(-1, 32) - w)
        n_far = int((err > nearest * (1 + 1e-6) + 1e-30).sum())
        check(n_far == 0, f"{name}: {n_far} q4nl values not on the level nearest to their source")
    g = run("bllm-run", "-m", outn, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1")
    check(g.returncode == 0, f"bllm-run on the q4nl model: {g.stderr}")

    # binary models default to q4nl for both (docs/results.md); f16/f32 keep floats
    for extra, want in [([], (19, 19)), (["--embed-type", "f16", "--head-type", "f32"], (1, 0))]:
        bq = os.path.join(d, "b.stb")
        r = run("bllm-quantize", src, "-o", bq, "--type", "b1g", "-q", "--force", *extra)
        check(r.returncode == 0, f"bllm-quantize --type b1g {extra}: {r.stderr}")
        if r.returncode == 0:
            st = Stb(bq)
            got = (st.tensors["token_embd.weight"]["type"], st.tensors["output.weight"]["type"])
            check(got == want, f"bllm-quantize b1g {extra}: embedding/head types {got}, want {want}")

    rb = os.path.join(d, "rb.stb")
    r = run("bllm-random", "smollm2-135m", "--type", "b1g", "-o", rb, "-q")
    check(r.returncode == 0 and Stb(rb).tensors["token_embd.weight"]["type"] == 19,
          f"bllm-random b1g: the tied embedding/head not q4nl by default: {r.stderr}")

    # tied (bllm-random smollm2-135m has no output.weight): the one matrix takes --head-type
    tied = os.path.join(d, "tied.stb")
    r = run("bllm-random", "smollm2-135m", "--type", "b1g", "--head-type", "q4", "--embed-type", "q8", "-o", tied,
            "-q")
    check(r.returncode == 0, f"bllm-random --head-type q4: {r.stderr}")
    st = Stb(tied)
    check("output.weight" not in st.tensors and st.tensors["token_embd.weight"]["type"] == 17,
          f"tied model: token_embd type {st.tensors['token_embd.weight']['type']} (want q4 = 17)")
    g = run("bllm-run", "-m", tied, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1")
    check(g.returncode == 0, f"bllm-run on the tied q4 model: {g.stderr}")

    for tool, args in [("bllm-convert", [src, "-o", os.path.join(d, "x.stb")]),
                       ("bllm-quantize", [out, "-o", os.path.join(d, "x.stb")]),
                       ("bllm-random", ["smollm2-135m", "-o", os.path.join(d, "x.stb")])]:
        r = run(tool, *args, "--head-type", "q3")
        check(r.returncode == 2 and "q8, q6, q4 or q4nl" in r.stderr, f"{tool} --head-type q3: rc {r.returncode} {r.stderr!r}")

    # A q4/q4nl head runs repacked (the x16 layout, docs/inference.md) where
    # the kernel set has kernels for it (AVX-512 VNNI or AVX-VNNI); elsewhere
    # this compares two row-major runs. stories260K (vocab 512, rows a
    # multiple of 16) with f32 layers: every position's logits through the
    # head (bllm-perplexity), and greedy decoding one token at a time (the
    # GEMV), against the scalar set's row-major head. The f32 kernels alone
    # move the perplexity by 1e-4 between the sets (the avx512 set's x16 head
    # against the avx2 set's row-major one: 4e-9, Emerald Rapids VM); a
    # broken layout moved it to 3e8.
    sdir = os.path.join(os.environ["BLLM_SHARED"], "data", "stories260K")
    text = os.path.join(sdir, "tinystories_excerpt_noncanonical.txt")
    if not os.path.exists(os.path.join(sdir, "stories260K.bin")):
        check(False, f"stories260K missing in {sdir} (../shared/data, see its PROVENANCE.md)")
    for ty in ("q4nl", "q4"):
        sm = os.path.join(d, f"stories-{ty}.stb")
        r = run("bllm-convert", os.path.join(sdir, "stories260K.bin"), "--tokenizer", os.path.join(sdir, "tok512.bin"),
                "--type", "f32", "--head-type", ty, "--embed-type", ty, "-q", "-o", sm)
        check(r.returncode == 0, f"bllm-convert stories260K --head-type {ty}: {r.stderr}")
        res = {}
        base, tol = "scalar", 1e-3
        for ks in ("", base):
            env = dict(os.environ, BLLM_KERNELS=ks) if ks else {k: v for k, v in os.environ.items() if k != "BLLM_KERNELS"}
            p = subprocess.run([os.path.join(TOOLS, "bllm-perplexity"), "-m", sm, "-f", text, "-c", "128", "--chunks", "4",
                                "-t", "2", "--json"], capture_output=True, text=True, env=env, timeout=120 * TIMEOUT_SCALE)
            g = subprocess.run([os.path.join(TOOLS, "bllm-run"), "-m", sm, "-p", "Once upon a time", "-n", "24", "--temp",
                                "0", "-t", "1"], capture_output=True, text=True, env=env, timeout=120 * TIMEOUT_SCALE)
            check(p.returncode == 0 and g.returncode == 0, f"{ty} head, kernels {ks or 'default'}: {p.stderr} {g.stderr}")
            res[ks] = (json.loads(p.stdout)["ppl"] if p.returncode == 0 else float("nan"), g.stdout)
        (pa, ga), (pb, gb) = res[""], res[base]
        check(abs(pa - pb) <= tol * pb, f"{ty} head: perplexity {pa} with the default kernels, {pb} with {base}")
        check(ga == gb, f"{ty} head: greedy text differs from the {base} set's: {ga!r} vs {gb!r}")
        check(pb < 50, f"{ty} head: perplexity {pb} on stories260K's own text (a broken head would be far higher)")

if failures:
    print(f"{len(failures)} of {checks} checks failed")
    sys.exit(1)
print(f"blockq files: all {checks} checks passed")
