"""bllm-bench and bllm-random against independent references.

usage: test_bench.py BLLM_BENCH BLLM_RANDOM STORIES260K_F32_STB PROJECT_VERSION

- bllm-bench on the stories260K F32 model (-o json): every field present and
  typed, t/s positive and finite, mean/sd equal to the samples' (numpy),
  byte counts, parameter count and bits/weight equal to what stb_py.py reads
  from the file (32.0 for F32), roofline numbers consistent, CPU features
  agreeing with /proc/cpuinfo, OpenBLAS not on its generic kernels where
  AVX2 runs (and on what OPENBLAS_CORETYPE says when set), the SVG chart
  well-formed; CSV and markdown carry the same rows.
- bllm-random smollm2-135m --type f16: tensor names and shapes equal to the
  real SmolLM2 GGUF's (gguf-py), hyperparameters equal to its metadata,
  parameter counts of all shapes equal to the published ones, weights
  N(0, 0.02^2), norms 1; bllm-bench loads it and reports 16.0 bits/weight.
- Bad input exits non-zero with a message naming the problem.
"""
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stb_py import Stb  # noqa: E402

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

CACHE = os.environ.get("BLLM_CACHE", os.path.expanduser("~/.cache/bllm"))
SMOL_GGUF = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

failures = []
VERSION = ""


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def run(args, timeout=60, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout * TIMEOUT_SCALE, env=env)


def require(path, what):
    if not os.path.exists(path):
        print(f"MISSING: {what} ({path}); build the tree or set BLLM_CACHE", file=sys.stderr)
        sys.exit(1)


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def expected_sizes(path):
    """File, weight, linear and per-token byte counts, from the directory."""
    s = Stb(path)
    e = {"file_bytes": os.path.getsize(path), "weight_bytes": 0, "n_params": 0,
         "linear_bytes": 0, "linear_params": 0}
    for name, t in s.tensors.items():
        e["weight_bytes"] += t["nbytes"]
        e["n_params"] += s.numel(name)
        if len(t["dims"]) == 2 and name.startswith("blk."):
            e["linear_bytes"] += t["nbytes"]
            e["linear_params"] += s.numel(name)
    embd = s.tensors["token_embd.weight"]
    tok = e["weight_bytes"] - embd["nbytes"] + embd["nbytes"] // embd["dims"][0]
    if "output.weight" not in s.tensors:
        tok += embd["nbytes"]
    e["token_bytes"] = tok
    e["bpw_linear"] = 8 * e["linear_bytes"] / e["linear_params"]
    e["bpw_all"] = 8 * e["weight_bytes"] / e["n_params"]
    return s, e


FIELDS = {  # name -> type(s)
    "model": str, "model_path": str, "model_name": str, "file_bytes": (int, float),
    "weight_bytes": (int, float), "n_params": (int, float), "linear_bytes": (int, float),
    "linear_params": (int, float), "bpw_linear": (int, float), "bpw_all": (int, float),
    "threads": (int, float), "test": str, "n_prompt": (int, float), "n_gen": (int, float),
    "n_depth": (int, float),
    "reps": (int, float), "ts_mean": (int, float), "ts_sd": (int, float), "ts_samples": list,
    "token_bytes": (int, float), "bandwidth_bytes_per_s": (int, float, type(None)),
    "ceiling_ts": (int, float, type(None)), "ceiling_pct": (int, float, type(None)),
    "cpu": str, "cpu_features": str, "kernels": str, "build": str, "loadavg": (int, float), "kv_cache": str,
    "weights_memory": str, "blas": str,
}


def check_record(r, model_path, exp, reps, tests, roofline):
    where = f"{os.path.basename(model_path)} {r.get('test')} t{r.get('threads')}"
    for f, ty in FIELDS.items():
        check(f in r, f"{where}: field '{f}' missing")
        if f in r:
            check(isinstance(r[f], ty), f"{where}: field '{f}' has type {type(r[f]).__name__}")
    extra = set(r) - set(FIELDS)
    check(not extra, f"{where}: unexpected fields {sorted(extra)}")
    if failures:
        return
    check(r["model"] == os.path.basename(model_path), f"{where}: model {r['model']!r}")
    for k in ("file_bytes", "weight_bytes", "n_params", "linear_bytes", "linear_params", "token_bytes"):
        check(r[k] == exp[k], f"{where}: {k} {r[k]} != {exp[k]} (read from the file)")
    for k in ("bpw_linear", "bpw_all"):
        check(close(r[k], exp[k]), f"{where}: {k} {r[k]} != {exp[k]}")
    check(r["test"] in tests, f"{where}: unexpected test {r['test']!r}")
    n = tests.get(r["test"], 0)
    gen = r["test"].startswith("tg")
    depth = int(r["test"].split(" @ d")[1]) if " @ d" in r["test"] else 0
    check((r["n_gen"], r["n_prompt"]) == ((n, 0) if gen else (0, n)), f"{where}: n_prompt/n_gen")
    check(r["n_depth"] == depth, f"{where}: n_depth {r['n_depth']}, want {depth}")
    check(r["reps"] == reps and len(r["ts_samples"]) == reps, f"{where}: {len(r['ts_samples'])} samples, want {reps}")
    ts = np.array(r["ts_samples"], dtype=float)
    check(bool(np.all(np.isfinite(ts)) and np.all(ts > 0)), f"{where}: samples not positive finite: {ts}")
    check(math.isfinite(r["ts_mean"]) and r["ts_mean"] > 0, f"{where}: ts_mean {r['ts_mean']}")
    check(close(r["ts_mean"], float(ts.mean()), 1e-9), f"{where}: ts_mean {r['ts_mean']} != mean {ts.mean()}")
    want_sd = float(ts.std(ddof=1)) if reps > 1 else 0.0
    check(abs(r["ts_sd"] - want_sd) <= 1e-9 * max(1.0, want_sd), f"{where}: ts_sd {r['ts_sd']} != {want_sd}")
    if roofline and gen and depth == 0:  # from a filled context a token reads the cache too: no ceiling
        bw, ceil, pct = r["bandwidth_bytes_per_s"], r["ceiling_ts"], r["ceiling_pct"]
        check(bw is not None and bw > 1e8, f"{where}: bandwidth {bw}")
        if bw:
            check(close(ceil, bw / exp["token_bytes"]), f"{where}: ceiling {ceil} != bw/token_bytes")
            check(close(pct, 100 * r["ts_mean"] / ceil), f"{where}: ceiling_pct {pct}")
    else:
        check(r["bandwidth_bytes_per_s"] is None and r["ceiling_ts"] is None and r["ceiling_pct"] is None,
              f"{where}: roofline fields should be null")
    want = expected_kernel_set()
    check(want is None or r["kernels"] == want, f"{where}: kernels {r['kernels']!r}, want {want!r} for this CPU")
    check(r["build"].startswith(VERSION + " (") and ("gcc" in r["build"] or "clang" in r["build"]),
          f"{where}: build {r['build']!r} does not start with version {VERSION}")


def cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def expected_kernel_set():
    """The set kernels/dispatch.c should pick, derived independently from
    /proc/cpuinfo (None where that cannot be told: another OS, or a set
    forced through BLLM_KERNELS, which the record must then echo)."""
    forced = os.environ.get("BLLM_KERNELS")
    if forced:
        return forced
    flags = cpuinfo_flags()
    if flags is None or platform.machine() not in ("x86_64", "AMD64"):
        return None
    avx2 = {"avx", "avx2", "fma", "f16c"} <= flags
    if avx2 and {"avx512f", "avx512bw", "avx512vl", "bmi1", "bmi2", "popcnt"} <= flags:
        return "avx512"
    return "avx2" if avx2 else "scalar"


def test_stories(bench, stories, tmp):
    _, exp = expected_sizes(stories)
    check(exp["bpw_linear"] == 32.0 and exp["bpw_all"] == 32.0, "stories260K F32 is not 32 bits/weight on disk")
    chart = os.path.join(tmp, "chart.svg")
    r = run([bench, "-m", stories, "-p", "32", "-n", "8", "-r", "2", "-t", "1", "-o", "json",
             "--roofline", "--bw-mib", "64", "--chart", chart])
    check(r.returncode == 0, f"bllm-bench json exited {r.returncode}: {r.stderr}")
    try:
        recs = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        check(False, f"bllm-bench -o json is not JSON: {e}\n{r.stdout[:500]}")
        return
    check(isinstance(recs, list) and len(recs) == 2, f"want 2 records, got {len(recs)}")
    check(sorted(x.get("test") for x in recs) == ["pp32", "tg8"], "tests are not pp32 and tg8")
    for rec in recs:
        check_record(rec, stories, exp, 2, {"pp32": 32, "tg8": 8}, True)
        check(rec.get("bpw_linear") == 32.0 and rec.get("bpw_all") == 32.0, "F32 model not reported at 32.0 bpw")
        check(rec.get("weights_memory", "").startswith("loaded (THP "), f"weights_memory {rec.get('weights_memory')!r}")
    flags = cpuinfo_flags()
    if flags is not None and recs:
        feats = set(recs[0]["cpu_features"].split())
        for f in ("avx2", "fma", "f16c", "avx", "sse4_2"):
            check((f in feats) == (f in flags), f"cpu_features says {f} {'in' if f in feats else 'absent'}, "
                                                f"/proc/cpuinfo disagrees")

    # OpenBLAS's kernels (runtime/blas.h): never its generic ones where AVX2
    # and FMA run (the tools start again with OPENBLAS_CORETYPE set), and a
    # value the user set is kept
    if flags is not None and recs and {"avx2", "fma"} <= flags and "OPENBLAS_CORETYPE" not in os.environ:
        check(recs[0].get("blas") not in ("Prescott", "", None),
              f"OpenBLAS runs {recs[0].get('blas')!r} kernels on a CPU with AVX2 and FMA")
    if platform.machine() in ("x86_64", "AMD64"):  # Prescott: an x86 core of Debian's every-core OpenBLAS
        r = run([bench, "-m", stories, "-p", "0", "-n", "2", "-r", "1", "-t", "1", "-o", "json"],
                env=dict(os.environ, OPENBLAS_CORETYPE="Prescott"))
        try:
            got = json.loads(r.stdout)[0].get("blas") if r.returncode == 0 else None
        except (json.JSONDecodeError, IndexError):
            got = None
        check(got == "Prescott",
              f"OPENBLAS_CORETYPE=Prescott not kept: bllm-bench reports {got!r} ({r.stderr.strip()})")

    # the chart: well-formed SVG, one circle per point plus the legend's
    try:
        root = ET.parse(chart).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        circles = root.findall(f".//{ns}circle")
        texts = [t.text or "" for t in root.findall(f".//{ns}text")]
        check(len(circles) == 2 + 1, f"chart has {len(circles)} circles, want 3")
        check(texts.count("stories260K-f32 t1") == 2, "chart lacks the point labels")
        check("tg8" in texts and "pp32" in texts, "chart lacks panel titles")
    except (ET.ParseError, OSError) as e:
        check(False, f"chart: {e}")

    # -d: the context filled first, tests named as llama-bench's, no
    # ceiling for a filled context; past the model's context, a clear error
    r = run([bench, "-m", stories, "-p", "16", "-n", "4", "-d", "0,40", "-r", "1", "-t", "1", "-o", "json",
             "--roofline", "--bw-mib", "64"])
    check(r.returncode == 0, f"bllm-bench -d exited {r.returncode}: {r.stderr}")
    try:
        recs = json.loads(r.stdout) if r.returncode == 0 else []
    except json.JSONDecodeError as e:
        check(False, f"bllm-bench -d -o json is not JSON: {e}")
        recs = []
    want = {"pp16": 16, "tg4": 4, "pp16 @ d40": 16, "tg4 @ d40": 4}
    check(sorted(x.get("test") for x in recs) == sorted(want), f"-d tests: {[x.get('test') for x in recs]}")
    for rec in recs:
        check_record(rec, stories, exp, 1, want, True)
    r = run([bench, "-m", stories, "-p", "0", "-n", "4", "-d", "100000", "-r", "1", "-t", "1"])
    check(r.returncode != 0 and "-d" in r.stderr and "context" in r.stderr,
          f"-d past the context: exit {r.returncode}, stderr {r.stderr.strip()!r}")

    # CSV and markdown: same rows, parseable
    r = run([bench, "-m", stories, "-p", "16", "-n", "4", "-r", "1", "-t", "1", "-o", "csv", "--mmap"])
    check(r.returncode == 0, f"csv exited {r.returncode}: {r.stderr}")
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    check(len(rows) == 2 and set(rows[0]) == set(FIELDS), f"csv: {len(rows)} rows, columns {list(rows[0]) if rows else []}")
    if rows:
        check(float(rows[0]["bpw_linear"]) == 32.0 and int(rows[0]["n_params"]) == exp["n_params"], "csv values")
        check(all(float(x["ts_mean"]) > 0 for x in rows), "csv t/s not positive")
        check(all(x["weights_memory"] == "mapped" for x in rows), "csv: --mmap not reported as mapped")
    r = run([bench, "-m", stories, "-p", "16", "-n", "4", "-r", "1", "-t", "1"])
    check(r.returncode == 0, f"md exited {r.returncode}: {r.stderr}")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| stories260K-f32.stb")]
    check(len(lines) == 2 and "| pp16 |" in lines[0] and "| tg4 |" in lines[1], f"md rows: {lines}")


def gguf_shapes(path):
    import gguf
    rd = gguf.GGUFReader(path)
    shapes = {t.name: [int(d) for d in reversed(t.shape.tolist())] for t in rd.tensors}

    def field(key):
        f = rd.fields[key]
        return f.parts[f.data[0]].tolist()[0]
    hp = {"dim": field("llama.embedding_length"), "hidden_dim": field("llama.feed_forward_length"),
          "n_layers": field("llama.block_count"), "n_heads": field("llama.attention.head_count"),
          "n_kv_heads": field("llama.attention.head_count_kv"), "max_seq_len": field("llama.context_length"),
          "vocab_size": len(rd.fields["tokenizer.ggml.tokens"].data)}
    return shapes, hp


def test_random(bench, random, tmp):
    # published parameter counts (model cards / config.json)
    r = run([random, "--list"])
    check(r.returncode == 0, f"bllm-random --list exited {r.returncode}")
    published = {"llama2-7b": 6738415616, "tinyllama-1.1b": 1100048384, "smollm2-135m": 134515008}
    listed = {ln.split()[0]: int(ln.split()[1]) for ln in r.stdout.splitlines()[1:] if ln.strip()}
    check(listed == published, f"parameter counts {listed} != published {published}")

    require(SMOL_GGUF, "SmolLM2 GGUF, the reference for the smollm2-135m shape")
    out = os.path.join(tmp, "smol-rand-f16.stb")
    r = run([random, "smollm2-135m", "--type", "f16", "--seed", "7", "-q", "-o", out], timeout=120)
    check(r.returncode == 0, f"bllm-random exited {r.returncode}: {r.stderr}")
    if r.returncode:
        return
    s, exp = expected_sizes(out)
    ref_shapes, ref_hp = gguf_shapes(SMOL_GGUF)
    got_shapes = {n: t["dims"] for n, t in s.tensors.items()}
    differ = sorted(n for n in set(got_shapes) | set(ref_shapes) if got_shapes.get(n) != ref_shapes.get(n))
    check(not differ, f"{len(differ)} tensors differ from SmolLM2's in name or shape, e.g. " +
          ", ".join(f"{n}: {got_shapes.get(n)} vs {ref_shapes.get(n)}" for n in differ[:3]))
    for k, v in ref_hp.items():
        check(s.meta.get("llama." + k) == v, f"llama.{k} = {s.meta.get('llama.' + k)}, SmolLM2 has {v}")
    check(s.meta.get("llama.head_dim") == ref_hp["dim"] // ref_hp["n_heads"], "head_dim")
    check(len(s.meta.get("tokenizer.tokens", [])) == ref_hp["vocab_size"], "tokenizer size != vocab")
    for name, t in s.tensors.items():
        want = 1 if len(t["dims"]) == 2 else 0  # f16 matrices, f32 vectors
        check(t["type"] == want, f"{name}: type {t['type']}, want {want}")
    check(exp["bpw_linear"] == 16.0, f"linear bits/weight {exp['bpw_linear']} on disk")
    w = s.array("blk.7.ffn_gate.weight")
    check(abs(float(w.std()) - 0.02) < 0.0004 and abs(float(w.mean())) < 0.0004,
          f"weights not N(0, 0.02^2): mean {w.mean()}, std {w.std()}")
    e = s.array("token_embd.weight")
    check(not np.array_equal(e[0], e[1]) and abs(float(e.std()) - 0.02) < 0.0004, "embeddings not random")
    check(bool(np.all(s.array("blk.0.attn_norm.weight") == 1.0)), "norm weights are not 1")
    del w, e

    r = run([bench, "-m", out, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "-o", "json"], timeout=120)
    check(r.returncode == 0, f"bllm-bench on the random model exited {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        recs = json.loads(r.stdout)
        for rec in recs:
            check_record(rec, out, exp, 1, {"pp4": 4, "tg2": 2}, False)
            check(rec["bpw_linear"] == 16.0, f"random f16 model reported at {rec['bpw_linear']} bpw")
            check(rec["model_name"] == "random smollm2-135m", f"model_name {rec['model_name']!r}")
    s.raw.close()
    os.remove(out)


def test_bad_input(bench, random, stories, tmp):
    cases = [
        ([bench, "-m", os.path.join(tmp, "missing.stb")], "missing.stb"),
        ([bench, "-m", stories, "-t", "0"], "-t"),
        ([bench, "-m", stories, "-p", "-1"], "-p"),
        ([bench, "-m", stories, "-n", "x"], "-n"),
        ([bench, "-m", stories, "-r", "0"], "-r"),
        ([bench, "-m", stories, "-o", "xml"], "xml"),
        ([bench, "-m", stories, "-p", "0", "-n", "0"], "nothing to measure"),
        ([bench, "-m", stories, "-p", "100000"], "context"),
        ([bench], "no model"),
        ([bench, "-m", stories, "--bogus"], "--bogus"),
        ([random, "llama9-1t", "-o", os.path.join(tmp, "x.stb")], "smollm2-135m"),
        ([random, "smollm2-135m", "--type", "q4", "-o", os.path.join(tmp, "x.stb")], "q4"),
        ([random, "smollm2-135m"], "-o"),
    ]
    for args, needle in cases:
        r = run(args)
        what = " ".join(os.path.basename(a) if os.sep in a else a for a in args)
        check(r.returncode != 0, f"'{what}' exited 0")
        check(needle in r.stderr, f"'{what}': stderr does not mention {needle!r}: {r.stderr.strip()!r}")
        check("Traceback" not in r.stderr and r.returncode > 0, f"'{what}' crashed (rc {r.returncode})")
    check(not os.path.exists(os.path.join(tmp, "x.stb")), "a failed bllm-random left a file behind")


def main():
    global VERSION
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bench, random, stories, VERSION = sys.argv[1:]
    for p, what in ((bench, "bllm-bench"), (random, "bllm-random"), (stories, "stories260K F32 model")):
        require(p, what)
    with open(stories, "rb") as f:
        if f.read(8) != b"BLLMSTB\0":
            print(f"MISSING: {stories} is not a model (its source checkpoint is missing?)", file=sys.stderr)
            sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="bllm-bench-test-") as tmp:
        test_bad_input(bench, random, stories, tmp)
        test_stories(bench, stories, tmp)
        test_random(bench, random, tmp)
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("bench tests passed")


if __name__ == "__main__":
    main()
