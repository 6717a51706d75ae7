#!/usr/bin/env python3
"""bllm-perplexity end to end.

  test_perplexity.py golden TOOL GOLDEN.json INPUT MODEL.stb [BF16_MODEL.stb]
      Every case of perplexity.golden.json on INPUT (stories260K | smollm2):
      the tool scores the golden token ids (--tokens) and must land within
      0.1% of the PyTorch float64 perplexity, with the same window and token
      counts; the gptq case is run again from the text itself (-f), which
      must tokenize to the same count and give the same perplexity. With
      BF16_MODEL, KL(f32 || bf16) and top-1 agreement against PyTorch.
  test_perplexity.py kl-self TOOL MODEL.stb
      KL of a model against itself is exactly 0 and top-1 agreement 100%, and
      the perplexity is bit-identical to a run without --kl-base and to a run
      on 2 threads instead of 1.
  test_perplexity.py errors TOOL STORIES.stb SMOLLM2.stb
      Bad inputs exit non-zero with a clear message and print nothing on stdout.

Data comes from $BLLM_SHARED/data (see tests/meson.build).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

PPL_TOL = 1e-3     # required: within 0.1% of the PyTorch perplexity
STDERR_TOL = 1e-2  # the error bar is a statistic of the same NLLs
KL_TOL = 1e-2      # relative; float32 logits vs float64 reference
# Threads per run: 2 for SmolLM2; 1 for stories260K, whose jobs are so
# short that spinning workers only fight the other tests meson runs alongside.
THREADS = "2"


def shared_data():
    d = Path(os.environ.get("BLLM_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
    return d


def check_model(path):
    p = Path(path)
    head = p.read_bytes()[:512] if p.exists() else b"MISSING: " + str(p).encode()
    if head.startswith(b"MISSING:"):
        print(f"FAIL: {path} was not converted: {head.decode(errors='replace').strip()}")
        return False
    return True


def run(cmd, timeout=300):
    print("running:", " ".join(cmd))
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * TIMEOUT_SCALE)
    return r, time.time() - t0


def run_json(cmd):
    # the PyTorch references attend over f32 keys and values: compare like
    # with like (the f16 cache's own cost is measured in docs/inference.md)
    r, dt = run(cmd + ["--json", "-t", THREADS, "--cache-type", "f32"])
    if r.returncode != 0:
        print(f"FAIL: exit {r.returncode}\n{r.stderr}")
        return None
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        print(f"FAIL: stdout is not one JSON object:\n{r.stdout}")
        return None


def rel(a, b):
    return abs(a / b - 1) if b else abs(a)


def compare_ppl(label, got, want, windows, tokens, text_tokens=None):
    errs = []
    if got["chunks"] != windows:
        errs.append(f"{got['chunks']} windows, expected {windows}")
    if got["tokens"] != tokens:
        errs.append(f"{got['tokens']} scored tokens, expected {tokens}")
    if text_tokens is not None and got["text_tokens"] != text_tokens:
        errs.append(f"the text gave {got['text_tokens']} tokens, PyTorch's tokenizer {text_tokens}")
    d = rel(got["ppl"], want["ppl"])
    if d > PPL_TOL:
        errs.append(f"ppl {got['ppl']:.6f}, PyTorch {want['ppl']:.6f} (rel {d:.2e} > {PPL_TOL:g})")
    ds = rel(got["ppl_stderr"], want["ppl_stderr"])
    if ds > STDERR_TOL:
        errs.append(f"ppl error {got['ppl_stderr']:.6f}, reference {want['ppl_stderr']:.6f}")
    if errs:
        print(f"FAIL {label}: " + "; ".join(errs))
        return False
    print(f"ok   {label}: ppl {got['ppl']:.6f} +/- {got['ppl_stderr']:.4f}, PyTorch float64 {want['ppl']:.6f} "
          f"(rel diff {got['ppl'] / want['ppl'] - 1:+.2e}), {got['tokens']} tokens in {got['chunks']} windows, "
          f"{got['seconds']:.1f} s")
    return True


def golden(tool, golden_path, input_name, model, bf16_model=None):
    global THREADS
    THREADS = "1" if input_name == "stories260K" else "2"
    if not check_model(model) or (bf16_model and not check_model(bf16_model)):
        return 1
    g = json.loads(Path(golden_path).read_text())
    inp = g["inputs"][input_name]
    cases = [c for c in g["cases"] if c["input"] == input_name]
    if not cases:
        print(f"FAIL: no golden cases for {input_name}")
        return 1
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = Path(tmp) / "ids.txt"
        ids_path.write_text("\n".join(map(str, inp["tokens"])) + "\n")
        for c in cases:
            want = c["expected"]
            base = [tool, "-m", model, "--tokens", str(ids_path), "-c", str(c["ctx"]), "--protocol", c["protocol"]]
            if "kl_base" in c:
                if not bf16_model:
                    continue
                got = run_json([tool, "-m", bf16_model, "--kl-base", model, "--tokens", str(ids_path),
                                "-c", str(c["ctx"]), "--protocol", c["protocol"]])
                if got is None:
                    ok = False
                    continue
                dk = rel(got["kl_mean"], want["kl_mean"])
                slack = want["near_ties"] / want["tokens"]
                da = abs(got["top1_agreement"] - want["top1_agreement"])
                if got["tokens"] != want["tokens"] or dk > KL_TOL or da > slack + 1e-12:
                    ok = False
                    print(f"FAIL {c['name']}: KL {got.get('kl_mean')!r} vs PyTorch {want['kl_mean']!r} "
                          f"(rel {dk:.2e} > {KL_TOL:g}?), top-1 {got.get('top1_agreement')!r} vs "
                          f"{want['top1_agreement']!r} (allowed {slack:.4f} for near ties), "
                          f"tokens {got['tokens']} vs {want['tokens']}")
                else:
                    print(f"ok   {c['name']}: KL(f32 || bf16) {got['kl_mean']:.6e}, PyTorch float64 "
                          f"{want['kl_mean']:.6e} (rel {got['kl_mean'] / want['kl_mean'] - 1:+.2e}); top-1 "
                          f"agreement {got['top1_agreement'] * 100:.3f}% vs {want['top1_agreement'] * 100:.3f}%")
                continue
            got = run_json(base)
            ok &= got is not None and compare_ppl(c["name"] + " (token ids)", got, want, want["windows"],
                                                  want["tokens"])
            if c["protocol"] != "gptq":
                continue
            # The text path: tokenize the text, take the same windows.
            src = shared_data() / inp["text_file"]
            if not src.exists():
                print(f"FAIL: missing {src} (set BLLM_SHARED)")
                ok = False
                continue
            data = src.read_bytes()
            if len(data) == inp["text_bytes"]:
                text_path = src
            else:
                text_path = Path(tmp) / "text.txt"
                text_path.write_bytes(data[:inp["text_bytes"]])
            got = run_json([tool, "-m", model, "-f", str(text_path), "-c", str(c["ctx"]),
                            "--chunks", str(want["windows"])])
            ok &= got is not None and compare_ppl(c["name"] + " (text)", got, want, want["windows"],
                                                  want["tokens"], inp["text_tokens"])
    if not ok:
        return 1
    print(f"PASS: {input_name}: {len(cases)} golden cases")
    return 0


def kl_self(tool, model):
    global THREADS
    THREADS = "1"
    if not check_model(model):
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        text = shared_data() / "stories260K" / "tinystories_excerpt_noncanonical.txt"
        if not text.exists():
            print(f"FAIL: missing {text} (set BLLM_SHARED)")
            return 1
        t = Path(tmp) / "t.txt"
        t.write_bytes(text.read_bytes()[:6000])
        plain = run_json([tool, "-m", model, "-f", str(t), "-c", "256"])
        got = run_json([tool, "-m", model, "-f", str(t), "-c", "256", "--kl-base", model])
        THREADS = "2"
        two = run_json([tool, "-m", model, "-f", str(t), "-c", "256"])
        # the default f16 KV cache (run_json asks for f32): close, not equal
        r, _ = run([tool, "-m", model, "-f", str(t), "-c", "256", "--json", "-t", "1"])
        half = json.loads(r.stdout) if r.returncode == 0 else None
    if plain is None or got is None or two is None or half is None:
        return 1
    errs = []
    if not (0 < rel(half["ppl"], plain["ppl"]) < 1e-3):
        errs.append(f"ppl {half['ppl']!r} with the f16 KV cache, {plain['ppl']!r} with f32: "
                    "expected different but within 0.1%")
    if two["ppl"] != plain["ppl"] or two["ppl_stderr"] != plain["ppl_stderr"]:
        errs.append(f"ppl {two['ppl']!r} on 2 threads, {plain['ppl']!r} on 1")
    if got["kl_mean"] != 0.0 or got["kl_stderr"] != 0.0:
        errs.append(f"KL {got['kl_mean']!r} +/- {got['kl_stderr']!r}, expected exactly 0")
    if got["top1_agreement"] != 1.0:
        errs.append(f"top-1 agreement {got['top1_agreement']!r}, expected 1")
    if got["ppl"] != plain["ppl"] or got["tokens"] != plain["tokens"]:
        errs.append(f"ppl {got['ppl']!r} with --kl-base, {plain['ppl']!r} without")
    if got["tokens"] < 1000:
        errs.append(f"only {got['tokens']} tokens scored")
    if errs:
        print("FAIL: " + "; ".join(errs))
        return 1
    print(f"PASS: KL(model || model) = 0 exactly and top-1 agreement 100% over {got['tokens']} positions; "
          f"ppl {got['ppl']:.6f} unchanged by --kl-base and by the thread count; f16 KV cache "
          f"{half['ppl']:.6f} (rel {rel(half['ppl'], plain['ppl']):.1e})")
    return 0


def errors(tool, stories, smol):
    if not check_model(stories) or not check_model(smol):
        return 1
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.txt"
        short.write_text("Once upon a time there was a cat.\n")
        ids = Path(tmp) / "ids.txt"
        ids.write_text("1 2 3 99999 4\n")
        six = Path(tmp) / "six.txt"
        six.write_text("1 2 3 4 5 6\n")
        junk = Path(tmp) / "junk.txt"
        junk.write_text("1 2 x3\n")
        missing = str(Path(tmp) / "no-such-file.txt")
        cases = [
            ("missing text file", ["-m", stories, "-f", missing], ["cannot open text file", missing]),
            ("missing token file", ["-m", stories, "--tokens", missing], ["cannot open token file"]),
            ("missing model", ["-m", str(Path(tmp) / "none.stb"), "-f", str(short)], ["cannot load model"]),
            ("-c above the model's context", ["-m", stories, "-f", str(short), "-c", "1024"],
             ["-c 1024 exceeds", "512"]),
            ("text shorter than a window", ["-m", stories, "-f", str(short), "-c", "256"],
             ["fewer than one window", "256"]),
            ("token id outside the vocabulary", ["-m", stories, "--tokens", str(ids), "-c", "2"], ["not an id"]),
            ("token file with junk", ["-m", stories, "--tokens", str(junk), "-c", "2"], ["not an id"]),
            ("KL base with another vocabulary", ["-m", stories, "-f", str(short), "-c", "8", "--kl-base", smol],
             ["vocabulary", "49152", "512"]),
            ("unknown protocol", ["-m", stories, "-f", str(short), "--protocol", "lm-eval"], ["bad value"]),
            ("no input", ["-m", stories], ["-f FILE"]),
            ("both inputs", ["-m", stories, "-f", str(short), "--tokens", str(ids)], ["exactly one"]),
            ("llamacpp window with nothing to score",
             ["-m", stories, "--tokens", str(six), "-c", "2", "--protocol", "llamacpp"], ["nothing to score"]),
            ("zero chunks", ["-m", stories, "-f", str(short), "--chunks", "0"], ["bad value"]),
        ]
        for name, args, needles in cases:
            r, _ = run([tool] + args + ["--json"], timeout=60)
            msg = r.stderr
            missing_bits = [n for n in needles if n not in msg]
            if r.returncode == 0 or r.returncode < 0 or missing_bits or r.stdout.strip():
                bad += 1
                print(f"FAIL {name}: exit {r.returncode}, stderr {msg.strip()!r}, stdout {r.stdout.strip()!r}"
                      f"{', missing ' + repr(missing_bits) if missing_bits else ''}")
            else:
                print(f"ok   {name}: exit {r.returncode}: {msg.strip().splitlines()[-1]}")
    if bad:
        return 1
    print(f"PASS: {len(cases)} bad inputs rejected with clear messages")
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "golden" and len(a) <= 6:
        return golden(*a[1:])
    if len(a) == 3 and a[0] == "kl-self":
        return kl_self(*a[1:])
    if len(a) == 4 and a[0] == "errors":
        return errors(*a[1:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
