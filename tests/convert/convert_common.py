"""Shared helpers of the convert tests: locating the binaries and data,
running source_dump / bllm-convert, and collecting failures so one run
reports every mismatch instead of stopping at the first."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

BUILD = os.environ.get("BLLM_BUILD", "")
SHARED = os.environ.get("BLLM_SHARED", "")
CACHE = os.environ.get("BLLM_CACHE", os.path.expanduser("~/.cache/bllm"))
SOURCE_DUMP = os.path.join(BUILD, "tests", "convert", "source_dump")
CONVERT = os.path.join(BUILD, "tools", "bllm-convert")
SMOLLM2 = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def require(path, what):
    if not os.path.exists(path):
        print(f"MISSING: {what} ({path}); run scripts/setup.sh or set BLLM_SHARED/BLLM_CACHE/BLLM_BUILD",
              file=sys.stderr)
        sys.exit(1)


require(SOURCE_DUMP, "test helper source_dump (build the tree first)")
require(CONVERT, "tools/bllm-convert (build the tree first)")


class Checker:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL: {what}", file=sys.stderr)

    def eq(self, got, want, what):
        self.check(got == want, f"{what}: got {got!r}, want {want!r}")

    def arrays_equal(self, got, want, what):
        """Bit-exact F32 equality (NaNs with the same bits count as equal)."""
        got = np.ascontiguousarray(got, dtype=np.float32)
        want = np.ascontiguousarray(want, dtype=np.float32)
        if got.shape != want.shape:
            self.check(False, f"{what}: shape {got.shape} != {want.shape}")
            return
        diff = got.view(np.uint32) != want.view(np.uint32)
        n = int(diff.sum())
        if n:
            i = int(np.flatnonzero(diff.ravel())[0])
            self.check(False, f"{what}: {n} of {got.size} values differ (first at {i}: "
                              f"{got.ravel()[i]!r} vs {want.ravel()[i]!r})")
        else:
            self.check(True, what)

    def finish(self):
        if self.failures:
            print(f"{self.name}: {len(self.failures)} failure(s), {self.passed} checks passed",
                  file=sys.stderr)
            sys.exit(1)
        print(f"{self.name}: all {self.passed} checks passed")


def run(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def src_args(fmt=None, tok=None):
    a = []
    if fmt:
        a += ["-f", fmt]
    if tok:
        a += ["-t", tok]
    return a


def info(src, fmt=None, tok=None):
    return json.loads(run([SOURCE_DUMP, "info", *src_args(fmt, tok), src]).stdout)


def tensor(src, name, dims, fmt=None, tok=None):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        run([SOURCE_DUMP, "tensor", *src_args(fmt, tok), src, name, f.name])
        return np.fromfile(f.name, dtype=np.float32).reshape(dims)


def vocab(src, fmt=None, tok=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        run([SOURCE_DUMP, "vocab", *src_args(fmt, tok), src, f.name])
        with open(f.name) as fh:
            v = json.load(fh)
    v["tokens"] = [bytes.fromhex(t) for t in v["tokens"]]
    v["merges"] = [bytes.fromhex(m) for m in v["merges"]]
    return v


def stb_info(path):
    return json.loads(run([SOURCE_DUMP, "stb-info", path]).stdout)


def stb_tensor(path, name, dims):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        run([SOURCE_DUMP, "stb-tensor", path, name, f.name])
        return np.fromfile(f.name, dtype=np.float32).reshape(dims)


def to_bf16(x):
    """F32 -> BF16 -> F32 with round-to-nearest-even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def to_f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)
