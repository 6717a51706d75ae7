"""llama2.c checkpoints: stories260K (legacy format) read with numpy after
run.c's memory_map_weights layout, its tok512.bin read in Python; then the
same weights re-exported here as a version-1 file (export.py's order and
256-byte header) and as a legacy file with a separate classifier (negative
vocab_size), which must give identical tensors."""
import hashlib
import os
import struct
import tempfile

import numpy as np

import convert_common as cc

chk = cc.Checker("llama2c")
ckpt = os.path.join(cc.SHARED, "data", "stories260K", "stories260K.bin")
tokbin = os.path.join(cc.SHARED, "data", "stories260K", "tok512.bin")
cc.require(ckpt, "stories260K.bin in the shared data")
cc.require(tokbin, "tok512.bin in the shared data")

raw = open(ckpt, "rb").read()
dim, hidden, L, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
w = np.frombuffer(raw, dtype=np.float32, offset=28)
hs = dim // nh
kvd = nkv * hs


def take(n):
    global w
    x, w = w[:n], w[n:]
    return x


# run.c memory_map_weights, independently
ref = {"token_embd.weight": take(vocab * dim).reshape(vocab, dim)}
att = take(L * dim).reshape(L, dim)
wq = take(L * dim * dim).reshape(L, dim, dim)
wk = take(L * kvd * dim).reshape(L, kvd, dim)
wv = take(L * kvd * dim).reshape(L, kvd, dim)
wo = take(L * dim * dim).reshape(L, dim, dim)
ffn = take(L * dim).reshape(L, dim)
w1 = take(L * hidden * dim).reshape(L, hidden, dim)
w2 = take(L * dim * hidden).reshape(L, dim, hidden)
w3 = take(L * hidden * dim).reshape(L, hidden, dim)
ref["output_norm.weight"] = take(dim)
take(seq * hs // 2 * 2)  # freq_cis_real, freq_cis_imag
chk.eq(w.size, 0, "stories260K.bin fully consumed by the run.c layout (shared classifier)")
for l in range(L):
    ref.update({f"blk.{l}.attn_norm.weight": att[l], f"blk.{l}.attn_q.weight": wq[l],
                f"blk.{l}.attn_k.weight": wk[l], f"blk.{l}.attn_v.weight": wv[l],
                f"blk.{l}.attn_output.weight": wo[l], f"blk.{l}.ffn_norm.weight": ffn[l],
                f"blk.{l}.ffn_gate.weight": w1[l], f"blk.{l}.ffn_down.weight": w2[l],
                f"blk.{l}.ffn_up.weight": w3[l]})

got = cc.info(ckpt, tok=tokbin)
hp = got["hparams"]
chk.eq((hp["dim"], hp["hidden_dim"], hp["n_layers"], hp["n_heads"], hp["n_kv_heads"], hp["n_vocab"],
        hp["max_seq_len"]), (64, 172, 5, 8, 4, 512, 512), "stories260K hparams")
chk.eq((hp["head_dim"], hp["rope_theta"], np.float32(hp["norm_eps"]), hp["rope_scaling"]),
       (8, 10000, np.float32(1e-5), 0), "head_dim, theta, eps, no scaling")
chk.eq(hp["name"], "stories260K", "name from the file name")
chk.eq(got["kind"], "llama2c", "kind")


def check_tensors(tag, path, ref):
    g = cc.info(path, tok=tokbin)
    names = {t["name"]: t for t in g["tensors"]}
    chk.eq(sorted(names), sorted(ref), f"{tag} tensor names")
    for name, x in ref.items():
        if name in names:
            chk.eq(names[name]["dims"], list(x.shape), f"{tag} {name} dims")
            chk.arrays_equal(cc.tensor(path, name, x.shape, tok=tokbin), x, f"{tag} {name}")
    return g


check_tensors("[legacy]", ckpt, ref)

# tokenizer.bin read in Python
tb = open(tokbin, "rb").read()
max_len = struct.unpack("<i", tb[:4])[0]
off, toks, scores = 4, [], []
while off < len(tb):
    sc, n = struct.unpack("<fi", tb[off:off + 8])
    toks.append(tb[off + 8:off + 8 + n])
    scores.append(sc)
    off += 8 + n
t = got["tokenizer"]
chk.eq((t["kind"], t["n_vocab"], t["bos_id"], t["eos_id"], t["max_token_len"], t["add_bos"]),
       (2, 512, 1, 2, max_len, True), "LLAMA2C tokenizer kind, ids, max_token_len")
v = cc.vocab(ckpt, tok=tokbin)
chk.check(v["tokens"] == toks, "token strings")
chk.check(np.array_equal(np.float32(v["scores"]), np.float32(scores)), "token scores")
man = "".join(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  {os.path.basename(p)}\n"
              for p in sorted([ckpt, tokbin], key=os.path.basename))
chk.eq(got["sha256"], hashlib.sha256(man.encode()).hexdigest(), "provenance hash over checkpoint + tokenizer")

with tempfile.TemporaryDirectory() as d:
    # version 1 (export.py version1_export), shared classifier
    v1 = os.path.join(d, "stories-v1.bin")
    with open(v1, "wb") as f:
        hdr = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, L, nh, nkv, vocab, seq, 1)
        f.write(hdr + b"\0" * (256 - len(hdr)))
        for arr in [att, ffn, ref["output_norm.weight"], ref["token_embd.weight"], wq, wk, wv, wo, w1, w2, w3]:
            f.write(np.ascontiguousarray(arr).tobytes())
    check_tensors("[v1]", v1, ref)

    # legacy with a separate classifier: negative vocab_size, wcls at the end
    sep = os.path.join(d, "stories-untied.bin")
    wcls = np.random.default_rng(0).standard_normal((vocab, dim)).astype(np.float32)
    with open(sep, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, L, nh, nkv, -vocab, seq) + raw[28:] + wcls.tobytes())
    check_tensors("[untied]", sep, dict(ref, **{"output.weight": wcls}))

    # bllm-convert end to end
    out = os.path.join(d, "stories.stb")
    p = cc.run([cc.CONVERT, ckpt, "--tokenizer", tokbin, "-o", out, "-q"])
    s = cc.stb_info(out)
    chk.eq(s["meta"].get("provenance.source_format"), "llama2c", "stb source format")
    chk.eq(s["meta"].get("llama.n_kv_heads"), 4, "stb n_kv_heads")
    chk.arrays_equal(cc.stb_tensor(out, "blk.3.attn_k.weight", (kvd, dim)), wk[3], "stb blk.3.attn_k")

    # failures: no tokenizer, wrong tokenizer, truncated checkpoint
    p = cc.run([cc.CONVERT, ckpt, "-o", out + "2"], check=False)
    chk.check(p.returncode == 1 and "tokenizer" in p.stderr, f"no tokenizer: {p.stderr.strip()!r}")
    big = os.path.join(cc.SHARED, "data", "llama2-tokenizer", "tokenizer.bin")
    if os.path.exists(big):
        p = cc.run([cc.CONVERT, ckpt, "--tokenizer", big, "-o", out + "2"], check=False)
        chk.check(p.returncode == 1 and "32000 tokens" in p.stderr, f"wrong tokenizer: {p.stderr.strip()!r}")
    cut = os.path.join(d, "cut.bin")
    open(cut, "wb").write(raw[:len(raw) - 100])
    p = cc.run([cc.CONVERT, cut, "--tokenizer", tokbin, "-o", out + "2"], check=False)
    chk.check(p.returncode == 1 and "truncated" in p.stderr, f"truncated checkpoint: {p.stderr.strip()!r}")
    chk.check(not os.path.exists(out + "2"), "no output after failures")

chk.finish()
