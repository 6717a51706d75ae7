#!/usr/bin/env python3
"""bllm against llama.cpp, in one interleaved run (docs/bench.md, "Against
llama.cpp").

Builds nothing itself. Given a llama.cpp build folder (llama-bench and
llama-quantize in it or in its bin/) it:
  1. writes random-weight F16 GGUFs of real shapes with llama.cpp's gguf-py
     (the llama2 SentencePiece vocabulary from ../shared/data, so both
     runtimes load a real tokenizer), or takes a real GGUF (--real);
  2. quantizes each with llama-quantize (TQ2_0 and Q4_0 by default) and with
     bllm-quantize --method rtn (b1g by default, bllm's default embedding and
     head types), both from the same F16 weights;
  3. runs llama-bench and bllm-bench interleaved: every repetition runs every
     model once at every thread count before the next repetition starts, so
     the ratios compare runs seconds apart on a noisy machine;
  4. prints a markdown table of tokens/s (range over the repetitions) and
     the ratios bllm / llama.cpp per repetition, plus bllm's share of the
     roofline ceiling that bllm-bench --roofline measures.

Files go to --work (default ~/.cache/bllm/vs-llamacpp) and are reused when
present; delete them to rebuild. Not part of the test suite: a 7B shape
needs about 25 GB of disk and an hour on two cores.

  python3 bench/vs-llamacpp.py --llama-build /tmp/lcpp/build \\
      --gguf-py /tmp/lcpp/llama.cpp/gguf-py -t 1,2 -r 2 \\
      --shape tinyllama-1.1b --shape llama2-7b --real SmolLM2.Q4_1.gguf
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The shapes of bllm-random (runtime/eval/random_model.c): vocab, dim,
# hidden, layers, heads, kv heads, context, rope theta.
SHAPES = {
    "tinyllama-1.1b": (32000, 2048, 5632, 22, 32, 4, 2048, 10000.0),
    "llama2-7b": (32000, 4096, 11008, 32, 32, 32, 4096, 10000.0),
}


def log(msg):
    print(f"[vs-llamacpp {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"vs-llamacpp: {cmd[0]} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def find_binary(build, name):
    for p in (os.path.join(build, "bin", name), os.path.join(build, name)):
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"vs-llamacpp: no {name} in {build} or {build}/bin (build it: cmake --build {build} --target {name})")


def llama_vocab(tokenizer_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tokenizer_model)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        # gguf TokenType: 1 normal, 2 unknown, 3 control, 6 byte
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1)
    return tokens, scores, types


def write_random_gguf(path, shape, tokenizer_model, seed=0):
    """A Llama GGUF with N(0, 0.02) F16 matrices (norms 1.0 in F32), tensor
    by tensor so that a 7B shape never sits in memory whole."""
    import numpy as np
    import gguf

    n_vocab, dim, hidden, n_layers, n_heads, n_kv, ctx, theta = SHAPES[shape]
    head_dim = dim // n_heads
    tensors = [("token_embd.weight", (n_vocab, dim), np.float16)]
    for l in range(n_layers):
        b = f"blk.{l}."
        tensors += [
            (b + "attn_norm.weight", (dim,), np.float32),
            (b + "attn_q.weight", (dim, dim), np.float16),
            (b + "attn_k.weight", (n_kv * head_dim, dim), np.float16),
            (b + "attn_v.weight", (n_kv * head_dim, dim), np.float16),
            (b + "attn_output.weight", (dim, dim), np.float16),
            (b + "ffn_norm.weight", (dim,), np.float32),
            (b + "ffn_gate.weight", (hidden, dim), np.float16),
            (b + "ffn_up.weight", (hidden, dim), np.float16),
            (b + "ffn_down.weight", (dim, hidden), np.float16),
        ]
    tensors += [("output_norm.weight", (dim,), np.float32), ("output.weight", (n_vocab, dim), np.float16)]

    tmp = path + ".part"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(f"random {shape}")
    w.add_context_length(ctx)
    w.add_embedding_length(dim)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(hidden)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, scores, types = llama_vocab(tokenizer_model)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for name, shp, dt in tensors:
        n = 1
        for s in shp:
            n *= s
        w.add_tensor_info(name, shp, np.dtype(dt), n * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    # Values do not change speed: matrices are windows into one 2^24-value
    # pool at random offsets (generating 7e9 normals would take minutes).
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(np.float16)
    pool = np.concatenate([pool, pool])
    for name, shp, dt in tensors:
        n = 1
        for s in shp:
            n *= s
        if dt == np.float32:
            data = np.ones(shp, dtype=np.float32)
        else:
            parts, left = [], n
            while left:
                k = min(left, 1 << 24)
                off = int(rng.integers(0, 1 << 24))
                parts.append(pool[off : off + k])
                left -= k
            data = np.concatenate(parts).reshape(shp)
        w.write_tensor_data(data)
    w.close()
    os.replace(tmp, path)


def gguf_token_bytes(path):
    """Bytes a generated token reads from a GGUF: every tensor but the token
    embedding, of which one row is read, unless it is also the head (tied)."""
    import gguf

    tensors = gguf.GGUFReader(path).tensors
    tied = not any(t.name == "output.weight" for t in tensors)
    return sum(int(t.n_bytes) for t in tensors if tied or t.name != "token_embd.weight")


def llama_bench_json(out, token_bytes):
    rows = json.loads(out)
    res = {}
    for r in rows:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        res[test] = {"ts": r["avg_ts"], "bytes": r["model_size"], "params": r["model_n_params"],
                     "token_bytes": token_bytes}
    return res


def bllm_bench_json(out):
    res = {}
    for r in json.loads(out):
        res[r["test"]] = {"ts": r["ts_mean"], "bytes": r["weight_bytes"], "params": r["n_params"],
                          "token_bytes": r["token_bytes"],
                          "ceiling_pct": r.get("ceiling_pct"), "bw": r.get("bandwidth_bytes_per_s"),
                          "cpu_features": r["cpu_features"], "kernels": r["kernels"]}
    return res


def fmt_range(vals, digits=1):
    lo, hi = min(vals), max(vals)
    if f"{lo:.{digits}f}" == f"{hi:.{digits}f}":
        return f"{lo:.{digits}f}"
    return f"{lo:.{digits}f}–{hi:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-build", required=True, help="llama.cpp cmake build folder (llama-bench, llama-quantize)")
    ap.add_argument("--gguf-py", help="llama.cpp's gguf-py folder (default: the gguf module installed)")
    ap.add_argument("--bllm-build", default=os.path.join(ROOT, "build"), help="bllm build folder (default build/)")
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/bllm/vs-llamacpp"), help="where the models go")
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="random-weight shape (repeatable)")
    ap.add_argument("--real", action="append", default=[], help="a real GGUF to compare on as well (repeatable)")
    ap.add_argument("--llama-types", default="TQ2_0,Q4_0", help="llama-quantize types, comma-separated")
    ap.add_argument("--real-llama-types", default="Q4_0", help="llama.cpp types for --real models (TQ2_0 needs rows of 256)")
    ap.add_argument("--bllm-types", default="b1g", help="bllm packed types (bllm-quantize --method rtn --type)")
    ap.add_argument("--bllm-args", default="", help="extra bllm-quantize options, e.g. '--head-type f16'")
    ap.add_argument("-t", "--threads", default="1,2")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=2, help="interleaved rounds (each test runs once per round)")
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "data", "llama2-tokenizer", "tokenizer.model"))
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()

    if a.gguf_py:
        sys.path.insert(0, a.gguf_py)
    llama_bench = find_binary(a.llama_build, "llama-bench")
    llama_quantize = find_binary(a.llama_build, "llama-quantize")
    bllm_bench = os.path.join(a.bllm_build, "tools", "bllm-bench")
    bllm_quantize = os.path.join(a.bllm_build, "tools", "bllm-quantize")
    for p in (bllm_bench, bllm_quantize):
        if not os.access(p, os.X_OK):
            sys.exit(f"vs-llamacpp: {p} missing; build bllm first (meson compile -C {a.bllm_build})")
    shapes = a.shape or ([] if a.real else ["tinyllama-1.1b"])
    if shapes and not os.path.exists(a.tokenizer):
        sys.exit(f"vs-llamacpp: the llama2 tokenizer {a.tokenizer} is missing (../shared/data, see PROVENANCE.md)")
    for r in a.real:
        if not os.path.exists(r):
            sys.exit(f"vs-llamacpp: {r}: no such file")
    threads = [int(t) for t in a.threads.split(",")]
    os.makedirs(a.work, exist_ok=True)

    # --- models -------------------------------------------------------------
    groups = []  # (label, [(runtime, type, path)])
    sources = [(s, os.path.join(a.work, f"{s}.f16.gguf"), a.llama_types) for s in shapes]
    sources += [(os.path.basename(r).rsplit(".gguf", 1)[0], os.path.abspath(r), a.real_llama_types) for r in a.real]
    for label, src, ltypes in sources:
        if label in SHAPES and not os.path.exists(src):
            log(f"writing {src}")
            write_random_gguf(src, label, a.tokenizer)
        models = []
        for t in [x for x in ltypes.split(",") if x]:
            out = os.path.join(a.work, f"{label}.{t}.gguf")
            if not os.path.exists(out):
                # --allow-requantize: a real model's source may itself be quantized
                run([llama_quantize, "--allow-requantize", src, out + ".part", t, "2"])
                os.replace(out + ".part", out)
            models.append(("llama.cpp", t, out))
        for t in [x for x in a.bllm_types.split(",") if x]:
            # the options are part of the name, so a cached file never stands in for other ones
            tag = "".join(c if c.isalnum() else "_" for c in a.bllm_args.strip())
            out = os.path.join(a.work, f"{label}.{t}{'.' + tag if tag else ''}.stb")
            if not os.path.exists(out):
                run([bllm_quantize, src, "-o", out, "--method", "rtn", "--type", t, *a.bllm_args.split()])
            models.append(("bllm", t, out))
        groups.append((label, models))

    # --- interleaved runs ---------------------------------------------------
    results = {}  # (label, runtime, type, threads, test) -> [ts per round]
    extra = {}
    token_bytes = {path: gguf_token_bytes(path) for _, models in groups for rt, _, path in models if rt == "llama.cpp"}
    for rnd in range(a.reps):
        for label, models in groups:
            for th in threads:
                for rt, ty, path in models:
                    if rt == "llama.cpp":
                        out = run([llama_bench, "-m", path, "-p", str(a.n_prompt), "-n", str(a.n_gen), "-t", str(th),
                                   "-r", "1", "-o", "json"])
                        res = llama_bench_json(out, token_bytes[path])
                    else:
                        out = run([bllm_bench, "-m", path, "-p", str(a.n_prompt), "-n", str(a.n_gen), "-t", str(th),
                                   "-r", "1", "-o", "json", "--roofline"])
                        res = bllm_bench_json(out)
                    for test, v in res.items():
                        results.setdefault((label, rt, ty, th, test), []).append(v["ts"])
                        extra[(label, rt, ty)] = v
                        if v.get("ceiling_pct") is not None:
                            results.setdefault((label, rt, ty, th, test, "pct"), []).append(v["ceiling_pct"])
                            results.setdefault((label, th, "bw"), []).append(v["bw"])
        log(f"round {rnd + 1} of {a.reps} done")

    # --- table --------------------------------------------------------------
    feats = next((v["cpu_features"] for v in extra.values() if "cpu_features" in v), "")
    kern = next((v["kernels"] for v in extra.values() if "kernels" in v), "")
    print(f"CPU features: {feats}; bllm kernels: {kern}; {a.reps} interleaved rounds\n")
    print("| model | runtime, type | size | bits/param (all tensors) |")
    print("|---|---|---:|---:|")
    for label, models in groups:
        for rt, ty, _ in models:
            v = extra[(label, rt, ty)]
            print(f"| {label} | {rt} {ty} | {v['bytes'] / 1e6:.0f} MB | {8 * v['bytes'] / v['params']:.2f} |")
    tests = [f"pp{a.n_prompt}"] * (a.n_prompt > 0) + [f"tg{a.n_gen}"] * (a.n_gen > 0)
    for label, models in groups:
        bl = [m for m in models if m[0] == "bllm"]
        ll = [m for m in models if m[0] == "llama.cpp"]
        header = ["model", "threads", "test"] + [f"{rt} {ty} t/s" for rt, ty, _ in models]
        header += [f"{b[1]} / {l[1]}" for b in bl for l in ll] + [f"{b[1]} % of ceiling" for b in bl]
        print("\n| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for th in threads:
            for test in tests:
                row = [label, str(th), test]
                for rt, ty, _ in models:
                    row.append(fmt_range(results.get((label, rt, ty, th, test), [0])))
                for b in bl:
                    for l in ll:
                        bv = results.get((label, "bllm", b[1], th, test), [])
                        lv = results.get((label, "llama.cpp", l[1], th, test), [])
                        ratios = [x / y for x, y in zip(bv, lv) if y > 0]
                        row.append(fmt_range(ratios, 2) + "x" if ratios else "–")
                for b in bl:
                    pct = results.get((label, "bllm", b[1], th, test, "pct"))
                    row.append(fmt_range(pct, 0) + "%" if pct else "–")
                print("| " + " | ".join(row) + " |")
    # What each runtime streams while generating: bytes per token x tokens/s
    # (the ratio of two runtimes' tg speeds can exceed the ratio of their
    # bytes per token only where one of them reads less efficiently).
    tg = f"tg{a.n_gen}"
    if a.n_gen > 0:
        for label, models in groups:
            print("\n| model | threads | " + " | ".join(f"{rt} {ty}: MB/token, GB/s read in {tg}"
                                                         for rt, ty, _ in models) + " |")
            print("|---|---|" + "---|" * len(models))
            for th in threads:
                cells = []
                for rt, ty, _ in models:
                    tb = extra[(label, rt, ty)]["token_bytes"]
                    ts = results.get((label, rt, ty, th, tg), [0])
                    cells.append(f"{tb / 1e6:.0f}, {fmt_range([tb * x / 1e9 for x in ts])}")
                print(f"| {label} | {th} | " + " | ".join(cells) + " |")
    for th in threads:
        bw = [x for (k, v) in results.items() if len(k) == 3 and k[1] == th and k[2] == "bw" for x in v if x]
        if bw:
            print(f"\nread bandwidth, {th} thread{'s' * (th > 1)} (bllm-bench --roofline): {fmt_range([b / 1e9 for b in bw])} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"|".join(map(str, k)): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
