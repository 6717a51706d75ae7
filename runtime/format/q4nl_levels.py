#!/usr/bin/env python3
"""Derives q4nl's 16 levels (runtime/format/blockq.h, BLLM_Q4NL_LEVELS).

A q4nl block stores d = m / level[0] (m: the block's value of largest
magnitude, sign kept) and each value as the nearest of 16 levels times d.
So, seen in units of -m, a block is its largest magnitude at exactly -1
and 31 values in [-1, 1]. The levels are the Lloyd-Max quantizer of those
31 values for blocks of 32 independent Gaussian values, with the first
level held at -1, rounded to int8 (times 127). Gaussian, not any model's
weights, so the table favours no model (fitted to SmolLM2's embedding it
came out close: -127 -103 -83 -65 -49 -34 -20 -6 8 22 36 50 64 80 97 116).

Run: python3 runtime/format/q4nl_levels.py  (numpy; prints the table)
"""
import numpy as np


def normalized(blocks):
    """Every block's values in units of -m, the largest magnitude left out."""
    rows = np.arange(len(blocks))
    at = np.abs(blocks).argmax(1)
    u = blocks / (-blocks[rows, at])[:, None]
    keep = np.ones_like(u, bool)
    keep[rows, at] = False
    return u[keep]


def lloyd_max(u, n=16, iters=200):
    c = np.linspace(-1.0, 1.0, n)
    for _ in range(iters):
        k = np.searchsorted((c[1:] + c[:-1]) / 2, u)
        for j in range(1, n):
            s = u[k == j]
            if len(s):
                c[j] = s.mean()
        c[0] = -1.0
        c = np.sort(c)
    return c


def main():
    rng = np.random.default_rng(0)
    u = normalized(rng.standard_normal((400000, 32)))
    levels = np.round(lloyd_max(u) * 127).astype(int)
    print("#define BLLM_Q4NL_LEVELS {" + ", ".join(str(v) for v in levels) + "}")


if __name__ == "__main__":
    main()
