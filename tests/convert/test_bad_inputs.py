"""Broken inputs must give a clear message, exit status 1 and no output
file, never a crash: truncated GGUF files (cut inside every header section
and inside the data), wrong magic, unsupported version, absurd counts,
string lengths past the end, tensor offsets beyond EOF or misaligned,
unknown or non-dequantizable tensor types, too many dimensions, broken
safetensors, and a few hundred random header mutations."""
import os
import shutil
import struct
import tempfile

import numpy as np

import convert_common as cc
import gguf_fixture as fx

chk = cc.Checker("bad-inputs")
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def walk(buf):
    """Byte positions in a GGUF header: end of each KV, and per tensor the
    offsets of its n_dims, type and offset fields."""
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    kv_ends, tensors = [], []

    def skip_str(p):
        return p + 8 + struct.unpack_from("<Q", buf, p)[0]

    first_key = pos
    for _ in range(n_kv):
        pos = skip_str(pos)
        t = struct.unpack_from("<I", buf, pos)[0]
        pos += 4
        if t == 8:
            pos = skip_str(pos)
        elif t == 9:
            et, n = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if et == 8:
                for _ in range(n):
                    pos = skip_str(pos)
            else:
                pos += n * SCALAR[et]
        else:
            pos += SCALAR[t]
        kv_ends.append(pos)
    for _ in range(n_tensors):
        start = pos
        pos = skip_str(pos)
        nd_at = pos
        nd = struct.unpack_from("<I", buf, pos)[0]
        pos += 4 + 8 * nd
        tensors.append({"start": start, "n_dims": nd_at, "type": pos, "offset": pos + 4})
        pos += 12
    return {"first_key": first_key, "kv_ends": kv_ends, "tensors": tensors, "info_end": pos}


with tempfile.TemporaryDirectory() as d:
    good = os.path.join(d, "good.gguf")
    written = fx.write(good, seed=3)
    buf = bytearray(open(good, "rb").read())
    lay = walk(buf)
    out = os.path.join(d, "out.stb")

    def expect(tag, data, needles, fmt="gguf", tok=None):
        path = os.path.join(d, "bad.gguf")
        open(path, "wb").write(bytes(data))
        args = [cc.CONVERT, path, "-o", out, "-q"] + (["--format", fmt] if fmt else [])
        args += ["--tokenizer", tok] if tok else []
        p = cc.run(args, check=False)
        msg = p.stderr.strip()
        ok = p.returncode == 1 and all(n in msg for n in needles) and not os.path.exists(out)
        chk.check(ok, f"{tag}: rc {p.returncode}, want 1 and {needles} in {msg!r}")

    # sanity: the unbroken file converts
    chk.eq(cc.run([cc.CONVERT, good, "-o", out, "-q"], check=False).returncode, 0, "the good file converts")
    os.remove(out)

    # truncation inside every section
    first_t = lay["tensors"][0]
    cuts = {"empty file": 0, "inside the magic": 3, "inside the counts": 20,
            "inside the first key": lay["first_key"] + 5,
            "inside the token array": lay["kv_ends"][-1] - 40,
            "after the metadata": lay["kv_ends"][-1],
            "inside a tensor info": first_t["type"] + 2,
            "before the padding": lay["info_end"],
            "inside the data": len(buf) - 1000}
    for tag, n in cuts.items():
        expect(f"truncated {tag}", buf[:n], ["truncated"])
    expect("truncated, auto format", buf[:len(buf) // 2], ["truncated"], fmt=None)

    bad = bytearray(buf)
    bad[:4] = b"GGUX"
    expect("wrong magic (--format gguf)", bad, ["not a GGUF file", "bad magic"])
    expect("wrong magic (auto: read as llama2.c, which needs a tokenizer)", bad, ["tokenizer"], fmt=None)
    tokbin = os.path.join(cc.SHARED, "data", "stories260K", "tok512.bin")
    if os.path.exists(tokbin):
        expect("wrong magic (auto, with a tokenizer)", bad, ["not a llama2.c checkpoint"], fmt=None, tok=tokbin)

    bad = bytearray(buf)
    struct.pack_into("<I", bad, 4, 1)
    expect("version 1", bad, ["version 1", "not supported"])

    bad = bytearray(buf)
    struct.pack_into("<Q", bad, 8, 1 << 60)
    expect("absurd tensor count", bad, ["absurd counts"])
    bad = bytearray(buf)
    struct.pack_into("<Q", bad, 16, 1 << 62)
    expect("absurd metadata count", bad, ["absurd counts"])

    bad = bytearray(buf)
    struct.pack_into("<Q", bad, lay["first_key"], 1 << 50)
    expect("key length past the end", bad, ["past the end"])

    off = struct.unpack_from("<Q", buf, first_t["offset"])[0]
    bad = bytearray(buf)
    struct.pack_into("<Q", bad, first_t["offset"], off + (1 << 30))
    expect("tensor offset beyond EOF", bad, ["beyond the end of the file"])
    bad = bytearray(buf)
    struct.pack_into("<Q", bad, first_t["offset"], off + 1)
    expect("misaligned tensor offset", bad, ["not aligned"])
    last_t = lay["tensors"][-1]
    bad = bytearray(buf)
    struct.pack_into("<Q", bad, last_t["offset"], 0)
    expect("overlapping tensors", bad, ["overlap"])

    bad = bytearray(buf)
    struct.pack_into("<I", bad, first_t["type"], 99)
    expect("unknown tensor type", bad, ["unknown GGML type id 99"])
    bad = bytearray(buf)
    struct.pack_into("<I", bad, first_t["n_dims"], 5)
    expect("five dimensions", bad, ["dimensions"])

    # a type the reader can size but not dequantize: Q4_0 -> IQ4_NL (same block size)
    names = [t for t in written]
    q40 = lay["tensors"][names.index("blk.0.attn_q.weight")]
    chk.eq(struct.unpack_from("<I", buf, q40["type"])[0], 2, "blk.0.attn_q is Q4_0 in the fixture")
    bad = bytearray(buf)
    struct.pack_into("<I", bad, q40["type"], 20)
    expect("non-dequantizable type", bad, ["IQ4_NL", "not supported", "blk.0.attn_q.weight"])

    # a model that is incomplete
    missing = os.path.join(d, "missing.gguf")
    import gguf
    w = gguf.GGUFWriter(missing, "gpt2")
    w.add_tensor("x", np.zeros((4, 4), np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    expect("other architecture", open(missing, "rb").read(), ["architecture 'gpt2'", "not supported"])

    # random header mutations: never a crash
    rng = np.random.default_rng(7)
    hdr_len = lay["info_end"]
    crashes, rcs = [], {}
    path = os.path.join(d, "fuzz.gguf")
    for i in range(300):
        m = bytearray(buf)
        for _ in range(int(rng.integers(1, 9))):
            m[int(rng.integers(0, hdr_len))] = int(rng.integers(0, 256))
        if i % 5 == 0:
            m = m[:int(rng.integers(0, len(m)))]
        open(path, "wb").write(bytes(m))
        p = cc.run([cc.CONVERT, path, "-o", out, "-q", "--format", "gguf"], check=False)
        rcs[p.returncode] = rcs.get(p.returncode, 0) + 1
        if p.returncode not in (0, 1) or (p.returncode == 1 and not p.stderr.strip()):
            crashes.append((i, p.returncode, p.stderr[-200:]))
        if os.path.exists(out):
            os.remove(out)
    chk.check(not crashes, f"300 mutated headers: no crash or silent failure (exit codes {rcs}; {crashes[:3]})")
    print(f"fuzz: exit codes {rcs}")

    # broken safetensors
    hf = os.path.join(d, "hf")
    os.makedirs(hf)
    import json
    json.dump({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10}, open(os.path.join(hf, "config.json"), "w"))
    from safetensors.numpy import save_file
    save_file({"model.embed_tokens.weight": np.zeros((10, 64), np.float32)}, os.path.join(hf, "model.safetensors"))
    st = open(os.path.join(hf, "model.safetensors"), "rb").read()
    open(os.path.join(hf, "model.safetensors"), "wb").write(st[:-8])
    p = cc.run([cc.CONVERT, hf, "-o", out], check=False)
    chk.check(p.returncode == 1 and "truncated" in p.stderr, f"truncated safetensors: {p.stderr.strip()!r}")
    open(os.path.join(hf, "model.safetensors"), "wb").write(struct.pack("<Q", 1 << 40) + st[8:])
    p = cc.run([cc.CONVERT, hf, "-o", out], check=False)
    chk.check(p.returncode == 1 and "not a safetensors file" in p.stderr, f"bad safetensors header: {p.stderr.strip()!r}")
    p = cc.run([cc.CONVERT, os.path.join(d, "nonexistent"), "-o", out], check=False)
    chk.check(p.returncode == 1 and "No such file" in p.stderr, f"missing input: {p.stderr.strip()!r}")
    p = cc.run([cc.CONVERT, good], check=False)
    chk.check(p.returncode == 2 and "-o" in p.stderr, f"usage error without -o: rc {p.returncode}")

chk.finish()
