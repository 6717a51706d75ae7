"""The markdown rows of docs/results.md from a folder of runs: for each NAME,
NAME.stb (bllm-info gives the stored bits), NAME.ppl.json (bllm-perplexity
--json), and where it was quantized NAME.quant.txt (bllm-quantize's report)
and NAME.quant.err (/usr/bin/time -v, for the peak memory).
  usage: results_table.py DIR BLLM_INFO LABEL=NAME[:CLAIMED_BITS] ..."""
import json
import os
import re
import subprocess
import sys


def row(d, info, label, name, claimed):
    pj = os.path.join(d, name + ".ppl.json")
    stb = os.path.join(d, name + ".stb")
    if not os.path.exists(pj) or os.path.getsize(pj) == 0 or not os.path.exists(stb):
        return f"| {label} | {claimed} | (missing) |"
    p = json.load(open(pj))
    t = json.loads(subprocess.run([info, stb, "--json"], capture_output=True, text=True, check=True).stdout)["totals"]
    qt = err = mem = per = ""
    qf = os.path.join(d, name + ".quant.txt")
    if os.path.exists(qf):
        s = open(qf).read()
        m = re.search(r"time: ([0-9.]+) s in all", s)
        qt = f"{float(m.group(1)):.0f} s" if m else ""
        m = re.search(r"\*\*all 210 matrices\*\* \|[^|]*\|[^|]*\|[^|]*\|[^|]*\|\s*([0-9.]+) \(rms\)", s)
        err = m.group(1) if m else ""
        m = re.search(r"N:M per layer[^:]*: (.*)", s)
        per = m.group(1) if m else ""
    ef = os.path.join(d, name + ".quant.err")
    if os.path.exists(ef):
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(ef).read())
        mem = f"{int(m.group(1)) / 1e6:.2f} GB" if m else ""
    return (f"| {label} | {claimed} | {t['linear']['bits_per_weight']:.2f} | {t['all']['bits_per_weight_file']:.2f} | "
            f"{p['ppl']:,.1f} ± {p['ppl_stderr']:,.1f} | {err} | {qt} | {mem} | {per} |")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    d, info = sys.argv[1], sys.argv[2]
    print("| model | bits/weight as the paper counts | stored bits/weight, linear | stored, file | WikiText-2 ppl "
          "(c = 2048) | rel. output error (rms) | quantization time | peak memory | N per layer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for a in sys.argv[3:]:
        label, rest = a.split("=", 1)
        name, _, claimed = rest.partition(":")
        print(row(d, info, label, name, claimed or "—"))


if __name__ == "__main__":
    main()
