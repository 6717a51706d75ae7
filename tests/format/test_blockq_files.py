"""q8 and q4 in files (docs/format.md): their bytes are llama.cpp's Q8_0 and
Q4_0 blocks, so gguf-py (PyPI, code nobody here wrote) must decode what
bllm-convert --embed-type/--head-type writes to exactly the values
bllm-quantize --dequantize reads back; the types land where asked (untied
and tied models, bllm-convert and bllm-random) and binary models default
to q8; the models run; a bad type name is refused.
  usage: test_blockq_files.py   (BLLM_BUILD, BLLM_SOURCE in the environment)"""
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


with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "tiny.gguf")
    fx.write(src, seed=11)
    out, deq = os.path.join(d, "q.stb"), os.path.join(d, "q-f32.stb")
    r = run("bllm-convert", src, "-o", out, "-q", "--type", "f16", "--embed-type", "q8", "--head-type", "q4")
    check(r.returncode == 0, f"bllm-convert --embed-type q8 --head-type q4: {r.stderr}")
    r = run("bllm-quantize", "--dequantize", out, "-o", deq, "-q")
    check(r.returncode == 0, f"bllm-quantize --dequantize: {r.stderr}")
    s, sd = Stb(out), Stb(deq)
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

    # binary models default to q8 for both (docs/results.md); f16/f32 keep floats
    for extra, want in [([], (16, 16)), (["--embed-type", "f16", "--head-type", "f32"], (1, 0))]:
        bq = os.path.join(d, "b.stb")
        r = run("bllm-quantize", src, "-o", bq, "--type", "b1g", "-q", "--force", *extra)
        check(r.returncode == 0, f"bllm-quantize --type b1g {extra}: {r.stderr}")
        if r.returncode == 0:
            st = Stb(bq)
            got = (st.tensors["token_embd.weight"]["type"], st.tensors["output.weight"]["type"])
            check(got == want, f"bllm-quantize b1g {extra}: embedding/head types {got}, want {want}")

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
        check(r.returncode == 2 and "q8 or q4" in r.stderr, f"{tool} --head-type q3: rc {r.returncode} {r.stderr!r}")

if failures:
    print(f"{len(failures)} of {checks} checks failed")
    sys.exit(1)
print(f"blockq files: all {checks} checks passed")
