"""bllm-quantize, bllm-info and the loader against an independent reading of
docs/format.md ("Packed binary types").

A small random Llama checkpoint (HF folder: F32 safetensors, the Llama-2
SentencePiece tokenizer; dim 128, FFN 320, 2 layers, so every linear layer
fits 32x64 tiles) is converted to an f32 .stb, which is then quantized with
RTN to every packed type (the .stb input path), and once straight from the
HF folder (must give the same bytes). For every type this script, sharing no
code with the C library:
  - reads the packed file with its own .stb parser and decodes every packed
    matrix from the documented byte layout with numpy;
  - checks each tensor's byte count, and bllm-info's bits/weight per tensor
    and in total (linear layers, all tensors, whole file), against the
    formulas of docs/format.md;
  - checks the decoded values bit-exactly against the f32 copy written by
    bllm-quantize --dequantize;
  - checks the decomposition against the RTN rules applied to the f32
    weights with numpy (scales within one fp16 step, where the C code's
    double sums and numpy's pairwise sums may round differently; signs, kept
    sets and salient sets exactly; OneBit's g h^T against numpy's SVD);
  - runs the packed model with bllm-run.
Then the loader must refuse, with a message naming the problem, damaged
packed files: a packed shape that is not a multiple of 32x64, a wrong byte
count, a pb8 companion with an out-of-range or unsorted column, a bad row
pointer, a non-finite scale, a pb8 matrix without companion, a companion on a
non-pb8 matrix.

usage: test_formats.py BLLM_CONVERT BLLM_QUANTIZE BLLM_INFO BLLM_RUN
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import xxhash
from safetensors.numpy import save_file

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

SHARED = os.environ.get("BLLM_SHARED", "")
SPM = os.path.join(SHARED, "data", "llama2-tokenizer", "tokenizer.model")

failures, checks = [], 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print("FAIL:", what)


# ------------------------------------------------------------ .stb reader

HDR = struct.Struct("<8sIIQQQQQIIQQQ40s")
TYPE_IDS = {"f32": 0, "f16": 1, "bf16": 2, "b1": 3, "b1g": 4, "b1mg": 5, "rb2g": 6, "nm24": 7, "nm48": 8,
            "nm58": 9, "nm68": 10, "onebit": 11, "pb8": 12, "u8": 13}
TYPE_NAMES = {v: k for k, v in TYPE_IDS.items()}


class Stb:
    def __init__(self, path):
        self.b = open(path, "rb").read()
        h = HDR.unpack_from(self.b, 0)
        assert h[0] == b"BLLMSTB\0", path
        self.file_bytes, self.dir_off, self.n_tensors, self.data_off = h[3], h[6], h[9], h[10]
        self.tensors = {}
        p = self.dir_off
        for _ in range(self.n_tensors):
            (nlen,) = struct.unpack_from("<H", self.b, p)
            name = self.b[p + 2:p + 2 + nlen].decode()
            e = p + 2 + nlen
            t, nd = struct.unpack_from("<II", self.b, e)
            dims = struct.unpack_from(f"<{nd}Q", self.b, e + 8)
            off, nbytes, _ = struct.unpack_from("<QQQ", self.b, e + 8 + 8 * nd)
            self.tensors[name] = dict(type=TYPE_NAMES.get(t, t), dims=dims, offset=off, nbytes=nbytes, entry=e)
            p = e + 8 + 8 * nd + 24

    def raw(self, name):
        t = self.tensors[name]
        s = self.data_off + t["offset"]
        return np.frombuffer(self.b, np.uint8, t["nbytes"], s)

    def f32(self, name):
        t = self.tensors[name]
        assert t["type"] == "f32", (name, t["type"])
        return self.raw(name).view(np.float32).reshape(t["dims"])


# ------------------------------------------------ the documented layouts

NM = {"nm24": (2, 4), "nm48": (4, 8), "nm58": (5, 8), "nm68": (6, 8)}  # N, M


def tile_bytes(t):
    if t in NM:
        n, m = NM[t]
        return 32 * (8 + (64 // m) * n // 8) + 128
    return {"b1": 256, "onebit": 256, "b1g": 320, "pb8": 320, "b1mg": 384, "rb2g": 704}[t]


def doc_bytes(t, rows, cols):
    """tensor_bytes from the table in docs/format.md"""
    T = (rows // 32) * (cols // 64)
    extra = {"b1": 2 * rows, "onebit": 2 * rows + 2 * cols}.get(t, 0)
    return tile_bytes(t) * T + extra


def f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def bits_le(a, axis_len):
    """LSB-first bit stream of the bytes along the last axis."""
    return np.unpackbits(a, axis=-1, bitorder="little")


def signs_of_tiles(tiles):
    """(T, 256) sign-tile bytes -> (T, 32, 64) bits: byte 16q+i, bits 0..3 row i,
    bits 4..7 row i+16, bit k = column 4q+k."""
    T = tiles.shape[0]
    bits = bits_le(tiles.reshape(T, 16, 16, 1), 8).reshape(T, 16, 16, 2, 4)  # q, i, half, k
    return bits.transpose(0, 3, 2, 1, 4).reshape(T, 32, 64)  # half, i, q, k


def untile(x, rows, cols):
    """(T, 32, 64 or other per-tile-row shape) in row-tile-major order -> per row."""
    nrt, nct = rows // 32, cols // 64
    x = x.reshape(nrt, nct, 32, *x.shape[2:])
    return np.moveaxis(x, 1, 2).reshape(rows, nct, *x.shape[3:])


def decode(t, raw, rows, cols, comp=None):
    """Returns (values f32 [rows, cols], parts dict) per docs/format.md."""
    T = (rows // 32) * (cols // 64)
    tb = tile_bytes(t)
    tiles = raw[:T * tb].reshape(T, tb)
    ng = cols // 64
    parts = {}

    def scal(off):  # fp16[32] per tile -> [rows, groups]
        v = tiles[:, off:off + 64].copy().view(np.float16).astype(np.float32)  # (T, 32)
        return untile(v.reshape(T, 32, 1), rows, cols).reshape(rows, ng)

    def sg(off):  # sign tile -> [rows, cols] of +-1 bits
        return untile(signs_of_tiles(np.ascontiguousarray(tiles[:, off:off + 256])), rows, cols).reshape(rows, cols)

    def grp(a):  # per group -> per weight
        return np.repeat(a, 64, axis=1)

    if t in ("b1", "onebit"):
        s = sg(0)
        tail = raw[T * tb:]
        if t == "b1":
            alpha = tail[:2 * rows].copy().view(np.float16).astype(np.float32)
            parts.update(sign=s, alpha=alpha)
            v = np.where(s == 1, alpha[:, None], -alpha[:, None]).astype(np.float32)
        else:
            g = tail[:2 * rows].copy().view(np.float16).astype(np.float32)
            h = tail[2 * rows:2 * rows + 2 * cols].copy().view(np.float16).astype(np.float32)
            parts.update(sign=s, g=g, h=h)
            gh = (g[:, None] * h[None, :]).astype(np.float32)
            v = np.where(s == 1, gh, -gh)
    elif t in ("b1g", "pb8"):
        s, a = sg(0), scal(256)
        parts.update(sign=s, alpha=a)
        v = np.where(s == 1, grp(a), -grp(a)).astype(np.float32)
        if t == "pb8":
            c = comp
            assert bytes(c[:4]) == b"PB8S"
            ver, r_, c_, nnz, res = struct.unpack_from("<5I", bytes(c[4:24]))
            assert (ver, r_, c_, res) == (1, rows, cols, 0), (ver, r_, c_, res)
            check(len(c) == 24 + 4 * (rows + 1) + 2 * rows + 3 * nnz, f"pb8 companion size {len(c)}")
            rp = c[24:24 + 4 * (rows + 1)].copy().view(np.uint32)
            sc = c[24 + 4 * (rows + 1):24 + 6 * rows + 4].copy().view(np.float16).astype(np.float32)
            o = 24 + 6 * rows + 4
            col = c[o:o + 2 * nnz].copy().view(np.uint16)
            val = c[o + 2 * nnz:o + 3 * nnz].copy().view(np.int8)
            sal = np.zeros((rows, cols), bool)
            q = np.zeros((rows, cols), np.int8)
            for r in range(rows):
                cs = col[rp[r]:rp[r + 1]]
                sal[r, cs] = True
                q[r, cs] = val[rp[r]:rp[r + 1]]
            parts.update(salient=sal, q=q, scale=sc, row_ptr=rp)
            v = np.where(sal, (q.astype(np.float32) * sc[:, None]).astype(np.float32), v)
    elif t == "b1mg":
        s, a, mu = sg(0), scal(256), scal(320)
        parts.update(sign=s, alpha=a, mu=mu)
        v = (grp(mu) + np.where(s == 1, grp(a), -grp(a))).astype(np.float32)
    elif t == "rb2g":
        s1, s2, a1, a2, mu = sg(0), sg(256), scal(512), scal(576), scal(640)
        parts.update(sign=s1, sign2=s2, alpha=a1, alpha2=a2, mu=mu)
        base = (grp(mu) + np.where(s1 == 1, grp(a1), -grp(a1))).astype(np.float32)
        v = (base + np.where(s2 == 1, grp(a2), -grp(a2))).astype(np.float32)
    else:
        # each row: a 64-bit kept mask, then its kept signs packed; the i-th
        # kept column of the row takes sign bit i (0 past the stored bits)
        n, m = NM[t]
        sb = (64 // m) * n // 8
        mask = bits_le(np.ascontiguousarray(tiles[:, :256]).reshape(T, 32, 8), 8)  # (T, 32, 64)
        sbits = bits_le(np.ascontiguousarray(tiles[:, 256:256 + 32 * sb]).reshape(T, 32, sb), 8)
        sbits = np.concatenate([sbits, np.zeros((T, 32, 64 - 8 * sb), np.uint8)], axis=-1)
        kept_rank = np.cumsum(mask, axis=-1) - 1
        sign = np.take_along_axis(sbits, np.clip(kept_rank, 0, 63), axis=-1) * mask
        codes = (mask.reshape(T, 32, 64 // m, m).astype(np.int64) << np.arange(m)).sum(-1)  # (T, 32, G)
        a = scal(32 * (8 + sb))
        mu = scal(32 * (8 + sb) + 64)
        mask = untile(mask.reshape(T, 32, 64), rows, cols).reshape(rows, cols)
        sign = untile(sign.reshape(T, 32, 64), rows, cols).reshape(rows, cols)
        parts.update(sign=sign, mask=mask, alpha=a, mu=mu, codes=codes)
        val = (grp(mu) + np.where(sign == 1, grp(a), -grp(a))).astype(np.float32)
        v = np.where(mask == 1, val, np.float32(0))
    return v.astype(np.float32), parts


# ------------------------------------------------------------ RTN rules

def ulps16(a, b):
    """distance in fp16 steps between fp16-valued arrays"""
    ia = np.asarray(a, np.float32).astype(np.float16).view(np.int16).astype(np.int64)
    ib = np.asarray(b, np.float32).astype(np.float16).view(np.int16).astype(np.int64)
    ia = np.where(ia < 0, -32768 - ia, ia)
    ib = np.where(ib < 0, -32768 - ib, ib)
    return int(np.abs(ia - ib).max()) if ia.size else 0


def mean32(x, axis=-1):
    return np.float32(1) * x.astype(np.float64).mean(axis=axis).astype(np.float32)


def check_rtn(t, W, p, name):
    rows, cols = W.shape
    ng = cols // 64
    Wg = W.reshape(rows, ng, 64)
    tag = f"{t} {name}"
    if t == "b1":
        check(ulps16(p["alpha"], f16(mean32(np.abs(W)))) <= 1, f"{tag}: alpha != mean|w| per row")
        check(np.array_equal(p["sign"], (W >= 0).astype(np.uint8)), f"{tag}: signs")
    elif t in ("b1g", "b1mg", "rb2g"):
        mu = f16(mean32(Wg)) if t != "b1g" else np.zeros((rows, ng), np.float32)
        if t != "b1g":
            check(ulps16(p["mu"], mu) <= 1, f"{tag}: mu != mean per group")
        mu = p.get("mu", mu)
        d = (Wg - mu[:, :, None]).astype(np.float32)
        check(ulps16(p["alpha"], f16(mean32(np.abs(d)))) <= 1, f"{tag}: alpha != mean|w - mu| per group")
        check(np.array_equal(p["sign"], (d >= 0).reshape(rows, cols).astype(np.uint8)), f"{tag}: signs")
        if t == "rb2g":
            a1 = p["alpha"][:, :, None]
            base = (mu[:, :, None] + np.where(p["sign"].reshape(rows, ng, 64) == 1, a1, -a1)).astype(np.float32)
            res = (Wg - base).astype(np.float32)
            check(ulps16(p["alpha2"], f16(mean32(np.abs(res)))) <= 1, f"{tag}: alpha2 != mean|residual|")
            check(np.array_equal(p["sign2"], (res >= 0).reshape(rows, cols).astype(np.uint8)), f"{tag}: signs2")
    elif t in NM:
        n, m = NM[t]
        Wm = np.abs(W).reshape(rows, cols // m, m)
        order = np.argsort(-Wm, axis=-1, kind="stable")  # ties: lower column first
        want = np.zeros_like(Wm, dtype=np.uint8)
        np.put_along_axis(want, order[..., :n], 1, axis=-1)
        check(np.array_equal(p["mask"], want.reshape(rows, cols)), f"{tag}: kept set != N largest |w| of M")
        keep = p["mask"].reshape(rows, ng, 64).astype(bool)
        cnt = keep.sum(-1)
        mu = f16((np.where(keep, Wg, 0).astype(np.float64).sum(-1) / cnt).astype(np.float32))
        check(ulps16(p["mu"], mu) <= 1, f"{tag}: mu != mean of kept")
        d = (Wg - p["mu"][:, :, None]).astype(np.float32)
        alpha = f16((np.where(keep, np.abs(d), 0).astype(np.float64).sum(-1) / cnt).astype(np.float32))
        check(ulps16(p["alpha"], alpha) <= 1, f"{tag}: alpha != mean|w - mu| of kept")
        check(np.array_equal(p["sign"].reshape(rows, ng, 64)[keep], (d >= 0)[keep].astype(np.uint8)),
              f"{tag}: kept signs")
        kept = np.vectorize(lambda c: bin(c).count("1"))(p["codes"])
        check(bool((kept == n).all()), f"{tag}: a group without exactly {n} of {m} kept was written")
    elif t == "onebit":
        check(np.array_equal(p["sign"], (W >= 0).astype(np.uint8)), f"{tag}: signs")
        u, s, vt = np.linalg.svd(np.abs(W).astype(np.float64))
        g = np.sqrt(s[0]) * np.abs(u[:, 0])
        h = np.sqrt(s[0]) * np.abs(vt[0])
        eg = np.abs(p["g"] - g).max() / g.max()
        eh = np.abs(p["h"] - h).max() / h.max()
        check(eg < 2e-3 and eh < 2e-3, f"{tag}: g, h differ from sqrt(sigma) u, v of |W| by {eg:.2g}, {eh:.2g}")
    elif t == "pb8":
        k = int(np.floor(0.1 * cols + 0.5))
        order = np.argsort(-np.abs(W), axis=1, kind="stable")
        want = np.zeros((rows, cols), bool)
        np.put_along_axis(want, order[:, :k], True, axis=1)
        check(np.array_equal(p["salient"], want), f"{tag}: salient set != top {k} |w| per row")
        scale = f16(np.abs(W).max(1).astype(np.float32) / np.float32(127))
        check(np.array_equal(p["scale"], scale), f"{tag}: salient scale != fp16(max|w| / 127)")
        q = np.clip(np.rint((W / scale[:, None]).astype(np.float32)), -127, 127).astype(np.int8)
        check(np.array_equal(p["q"][want], q[want]), f"{tag}: salient int8 values")
        ns = ~want.reshape(rows, ng, 64)
        alpha = f16((np.where(ns, np.abs(Wg), 0).astype(np.float64).sum(-1) / ns.sum(-1)).astype(np.float32))
        check(ulps16(p["alpha"], alpha) <= 1, f"{tag}: alpha != mean|w| over non-salient")
        check(np.array_equal(p["sign"], (W >= 0).astype(np.uint8)), f"{tag}: signs")


# ------------------------------------------------------------ the model

CFG = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=128, intermediate_size=320,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
           rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, vocab_size=32000,
           bos_token_id=1, eos_token_id=2)


def make_hf(d):
    rng = np.random.default_rng(7)
    D, H, V = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    kv = CFG["num_key_value_heads"] * D // CFG["num_attention_heads"]
    w = {"model.embed_tokens.weight": (V, D), "lm_head.weight": (V, D), "model.norm.weight": (D,)}
    for l in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                  p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (kv, D),
                  p + "self_attn.v_proj.weight": (kv, D), p + "self_attn.o_proj.weight": (D, D),
                  p + "mlp.gate_proj.weight": (H, D), p + "mlp.up_proj.weight": (H, D),
                  p + "mlp.down_proj.weight": (D, H)})
    tensors = {}
    for name, shape in w.items():
        if len(shape) == 1:
            tensors[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            # per-row and per-column scale variation and a few outliers, so
            # group scales, OneBit's rank-1 and pb8's salient set matter
            x = rng.standard_normal(shape) * np.exp(0.5 * rng.standard_normal((shape[0], 1)))
            x *= np.exp(0.3 * rng.standard_normal((1, shape[1])))
            x += (rng.random(shape) < 0.01) * rng.standard_normal(shape) * 8
            tensors[name] = (0.02 * x).astype(np.float32)
    save_file(tensors, os.path.join(d, "model.safetensors"))
    json.dump(CFG, open(os.path.join(d, "config.json"), "w"))
    shutil.copy(SPM, os.path.join(d, "tokenizer.model"))


def run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)
    check(r.returncode == 0, f"{what}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def is_linear(name, t):
    return name.startswith("blk.") and len(t["dims"]) == 2


def check_file(t, path, deq_path, info, W):
    s = Stb(path)
    dq = Stb(deq_path)
    lin_w = lin_b = all_w = all_b = 0
    per = {x["name"]: x for x in info["tensors"]}
    n_packed = 0
    for name, tt in s.tensors.items():
        dims = tt["dims"]
        if tt["type"] == "u8":
            check(name.endswith(".salient") and s.tensors[name[:-8]]["type"] == "pb8",
                  f"{t}: stray u8 tensor {name}")
            all_b += tt["nbytes"]
            continue
        nw = int(np.prod(dims))
        cb = s.tensors[name + ".salient"]["nbytes"] if tt["type"] == "pb8" else 0
        all_w += nw
        all_b += tt["nbytes"]
        if is_linear(name, tt):
            lin_w += nw
            lin_b += tt["nbytes"] + cb
        want_bpw = 8 * (tt["nbytes"] + cb) / nw
        check(abs(per[name]["bits_per_weight"] - want_bpw) <= 1e-9 * want_bpw,
              f"{t} {name}: bllm-info says {per[name]['bits_per_weight']} bits/weight, bytes give {want_bpw}")
        if tt["type"] not in NM and tt["type"] not in ("b1", "b1g", "b1mg", "rb2g", "onebit", "pb8"):
            if is_linear(name, tt):
                check(False, f"{t}: linear layer {name} left as {tt['type']}")
            continue
        n_packed += 1
        rows, cols = dims
        check(tt["type"] == t, f"{name} is {tt['type']}, wanted {t}")
        check(tt["nbytes"] == doc_bytes(t, rows, cols),
              f"{t} {name}: {tt['nbytes']} bytes, docs/format.md says {doc_bytes(t, rows, cols)}")
        comp = s.raw(name + ".salient") if t == "pb8" else None
        v, parts = decode(t, s.raw(name), rows, cols, comp)
        ref = dq.f32(name)
        same = v.view(np.uint32) == ref.view(np.uint32)
        check(bool(same.all()), f"{t} {name}: {int((~same).sum())} values of the documented decoding differ from "
                                f"bllm-quantize --dequantize")
        check_rtn(t, W[name], parts, name)
    check(n_packed == 14, f"{t}: {n_packed} packed matrices, wanted 14")
    tot = info["totals"]
    check(tot["linear"]["weights"] == lin_w and tot["linear"]["bytes"] == lin_b and
          abs(tot["linear"]["bits_per_weight"] - 8 * lin_b / lin_w) < 1e-9, f"{t}: linear totals {tot['linear']}")
    a = tot["all"]
    check(a["weights"] == all_w and a["tensor_bytes"] == all_b and a["file_bytes"] == s.file_bytes ==
          os.path.getsize(path), f"{t}: all totals {a}")
    check(abs(a["bits_per_weight_file"] - 8 * s.file_bytes / all_w) < 1e-9 and
          abs(a["bits_per_weight_tensors"] - 8 * all_b / all_w) < 1e-9, f"{t}: bits/weight totals {a}")
    return 8 * lin_b / lin_w


# ------------------------------------------------------------ refusals

def reseal(b):
    h = list(HDR.unpack_from(b, 0))
    start, end = h[4], h[6] + h[7]
    h[12] = xxhash.xxh3_64_intdigest(bytes(b[start:end]))
    HDR.pack_into(b, 0, *h)


def refusals(bllm_run, b1g_path, pb8_path, d):
    def expect(what, path, needle):
        r = subprocess.run([bllm_run, "-m", path, "-p", "hello", "-n", "2", "--temp", "0", "-t", "1"],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)
        ok = 0 < r.returncode < 128 and needle in r.stderr
        check(ok, f"refusal '{what}': exit {r.returncode}, stderr {r.stderr.strip()!r} lacks {needle!r}")
        print(("ok  " if ok else "BAD ") + f"{what:<40} -> {r.stderr.strip().splitlines()[-1] if r.stderr else ''}")

    def variant(src, name, mutate):
        s = Stb(src)
        b = bytearray(s.b)
        mutate(s, b)
        p = os.path.join(d, name)
        open(p, "wb").write(b)
        return p

    q = "blk.0.attn_q.weight"

    def dims_at(s, name):
        return s.tensors[name]["entry"] + 8

    def nbytes_at(s, name):
        e = s.tensors[name]["entry"]
        return e + 8 + 8 * len(s.tensors[name]["dims"]) + 8

    def bad_cols(s, b):
        struct.pack_into("<Q", b, dims_at(s, q) + 8, 96)
        reseal(b)
    expect("b1g matrix with 96 columns", variant(b1g_path, "cols.stb", bad_cols), "do not fit type b1g")

    def bad_rows(s, b):
        struct.pack_into("<Q", b, dims_at(s, q), 112)
        reseal(b)
    expect("b1g matrix with 112 rows", variant(b1g_path, "rows.stb", bad_rows), "rows % 32 == 0")

    def bad_size(s, b):
        struct.pack_into("<Q", b, nbytes_at(s, q), s.tensors[q]["nbytes"] - 64)
        reseal(b)
    expect("b1g matrix 64 bytes short", variant(b1g_path, "size.stb", bad_size), "b1g shape needs")

    c = q + ".salient"

    def comp_off(s):
        return s.data_off + s.tensors[c]["offset"]

    rows, cols = s_dims = Stb(pb8_path).tensors[q]["dims"]

    def col_oob(s, b):
        o = comp_off(s) + 24 + 6 * rows + 4
        struct.pack_into("<H", b, o, cols)  # first entry of row 0
    expect("pb8 companion column out of range", variant(pb8_path, "oob.stb", col_oob),
           f"has column {cols}, the matrix has {cols}")

    def col_order(s, b):
        o = comp_off(s) + 24 + 6 * rows + 4
        first, = struct.unpack_from("<H", b, o)
        struct.pack_into("<H", b, o + 2, first)  # second entry = first
    expect("pb8 companion columns not increasing", variant(pb8_path, "order.stb", col_order), "strictly increasing")

    def row_ptr(s, b):
        struct.pack_into("<I", b, comp_off(s) + 24 + 4 * 3, 0)  # row 3 starts before row 2
    expect("pb8 companion row pointers decreasing", variant(pb8_path, "rowptr.stb", row_ptr), "non-decreasing")

    def scale_inf(s, b):
        struct.pack_into("<H", b, comp_off(s) + 24 + 4 * (rows + 1) + 2 * 5, 0x7c00)
    expect("pb8 companion infinite scale", variant(pb8_path, "scale.stb", scale_inf), "non-finite scale")

    def no_comp(s, b):
        e = s.tensors[c]["entry"]
        b[e - 1] = ord("x")  # "....salienx"
        reseal(b)
    expect("pb8 matrix without companion", variant(pb8_path, "nocomp.stb", no_comp), "lacks its companion")

    def wrong_owner(s, b):
        struct.pack_into("<I", b, s.tensors[q]["entry"], TYPE_IDS["b1g"])
        reseal(b)
    expect("companion on a b1g matrix", variant(pb8_path, "owner.stb", wrong_owner), "has a salient companion")


def main():
    convert, quantize, info, bllm_run = sys.argv[1:5]
    if not os.path.exists(SPM):
        print(f"MISSING: Llama-2 tokenizer.model ({SPM}); set BLLM_SHARED")
        return 1
    with tempfile.TemporaryDirectory() as d:
        hf = os.path.join(d, "hf")
        os.makedirs(hf)
        make_hf(hf)
        f32 = os.path.join(d, "f32.stb")
        run([convert, hf, "-o", f32, "-q"], "bllm-convert")
        src = Stb(f32)
        W = {n: src.f32(n) for n, t in src.tensors.items() if is_linear(n, t)}
        table = {}
        for t in ["b1", "b1g", "b1mg", "rb2g", "nm24", "nm48", "nm58", "nm68", "onebit", "pb8"]:
            out, deq = os.path.join(d, f"{t}.stb"), os.path.join(d, f"{t}-f32.stb")
            run([quantize, f32, "--type", t, "-o", out, "-q"], f"bllm-quantize --type {t}")
            run([quantize, "--dequantize", out, "-o", deq, "-q"], f"bllm-quantize --dequantize {t}")
            r = run([info, out, "--json"], f"bllm-info {t}")
            js = json.loads(r.stdout)
            meta = js["metadata"]
            check(meta.get("provenance.quantization.type") == t and
                  meta.get("provenance.quantization.method") == "rtn" and
                  meta.get("provenance.source_format") == "stb" and
                  meta.get("provenance.parent.source_format") == "hf", f"{t}: provenance keys {meta}")
            table[t] = check_file(t, out, deq, js, W)
            g = subprocess.run([bllm_run, "-m", out, "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1"],
                               capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
            check(g.returncode == 0, f"{t}: bllm-run on the packed model: {g.stderr.strip()}")
        # the HF folder straight in gives the same packed bytes
        direct = os.path.join(d, "direct.stb")
        run([quantize, hf, "--type", "nm48", "-o", direct, "-q"], "bllm-quantize from HF")
        a, b = Stb(direct), Stb(os.path.join(d, "nm48.stb"))
        same = all(bytes(a.raw(n)) == bytes(b.raw(n)) for n in a.tensors)
        check(same and a.tensors.keys() == b.tensors.keys(), "HF input and .stb input quantize differently")
        print("linear-layer bits/weight:", ", ".join(f"{t} {v:.4f}" for t, v in table.items()))
        refusals(bllm_run, os.path.join(d, "b1g.stb"), os.path.join(d, "pb8.stb"), d)
    print(f"{checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
