#!/usr/bin/env python3
"""Perplexity against true bits per weight, as an SVG (no dependencies).

Each point is a model: its stored bits per linear-layer weight come from
`bllm-info --json` (every sign, mask, scale and index counted from the
bytes), its perplexity from a `bllm-perplexity --json` result. A point may
carry the bits its paper claims: drawn hollow at the same perplexity and
joined to the stored one, so the gap between the two counts shows.

usage: ppl_chart.py -o chart.svg --info build/tools/bllm-info
                    LABEL,MODEL.stb,PPL.json[,CLAIMED_BITS] ...
"""
import argparse
import json
import math
import subprocess
import sys


def load(info, spec):
    parts = spec.split(",")
    if len(parts) not in (3, 4):
        sys.exit(f"ppl_chart: '{spec}' is not LABEL,MODEL.stb,PPL.json[,CLAIMED_BITS]")
    label, model, ppl_path = parts[:3]
    r = subprocess.run([info, model, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ppl_chart: bllm-info {model}: {r.stderr.strip()}")
    bits = json.loads(r.stdout)["totals"]["linear"]["bits_per_weight"]
    with open(ppl_path) as f:
        ppl = json.load(f)["ppl"]
    claimed = float(parts[3]) if len(parts) == 4 else None
    return {"label": label, "bits": bits, "ppl": ppl, "claimed": claimed}


def svg(points, title):
    W, H, L, R, T, B = 760, 480, 70, 170, 40, 50
    xs = [p["bits"] for p in points] + [p["claimed"] for p in points if p["claimed"] is not None]
    x0, x1 = 0.0, math.ceil(max(xs) + 0.5)
    ys = [math.log10(p["ppl"]) for p in points]
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    if y1 == y0:
        y1 += 1

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - R)

    def Y(v):
        return H - B - (v - y0) / (y1 - y0) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2 - R / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for k in range(int(x0), int(x1) + 1):
        o.append(f'<line x1="{X(k)}" y1="{T}" x2="{X(k)}" y2="{H - B}" stroke="#ddd"/>')
        o.append(f'<text x="{X(k)}" y="{H - B + 16}" text-anchor="middle">{k}</text>')
    for k in range(y0, y1 + 1):
        o.append(f'<line x1="{L}" y1="{Y(k)}" x2="{W - R}" y2="{Y(k)}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{Y(k) + 4}" text-anchor="end">1e{k}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">bits per weight of the linear layers '
             f'(filled: stored; hollow: the paper\'s count)</text>')
    o.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" '
             f'text-anchor="middle">WikiText-2 perplexity (log scale)</text>')
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
              "#bcbd22"]
    for i, p in enumerate(points):
        c = colors[i % len(colors)]
        x, y = X(p["bits"]), Y(math.log10(p["ppl"]))
        if p["claimed"] is not None:
            xc = X(p["claimed"])
            o.append(f'<line x1="{xc}" y1="{y}" x2="{x}" y2="{y}" stroke="{c}" stroke-dasharray="3,3"/>')
            o.append(f'<circle cx="{xc}" cy="{y}" r="5" fill="white" stroke="{c}" stroke-width="2"/>')
        o.append(f'<circle cx="{x}" cy="{y}" r="5" fill="{c}"/>')
        ly = T + 16 * i
        o.append(f'<circle cx="{W - R + 14}" cy="{ly}" r="5" fill="{c}"/>')
        o.append(f'<text x="{W - R + 24}" y="{ly + 4}">{p["label"]}: {p["ppl"]:.4g} @ {p["bits"]:.2f}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--info", default="build/tools/bllm-info")
    ap.add_argument("--title", default="SmolLM2-135M-Instruct: perplexity against true bits per weight")
    ap.add_argument("points", nargs="+")
    a = ap.parse_args()
    points = [load(a.info, s) for s in a.points]
    with open(a.output, "w") as f:
        f.write(svg(points, a.title))
    for p in points:
        claimed = f" (paper: {p['claimed']:g})" if p["claimed"] is not None else ""
        print(f"{p['label']}: ppl {p['ppl']:.4g} at {p['bits']:.4f} bits/weight{claimed}")


if __name__ == "__main__":
    main()
