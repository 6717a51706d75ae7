"""Synthetic GGUF files covering F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K: the importer's values must equal
gguf.quants.dequantize bit for bit (Q8_K: its ggml definition in numpy).
Also the metadata mapping (head_dim from dim/heads, linear RoPE scaling, SPM
tokenizer defaults, eot from "<|end|>", custom alignment) and the
--type bf16 output of bllm-convert."""
import os
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as Q

import convert_common as cc
import gguf_fixture as fx

chk = cc.Checker("gguf-synthetic")
with tempfile.TemporaryDirectory() as d:
    for alignment in (None, 64):
        path = os.path.join(d, f"tiny-{alignment}.gguf")
        tensors = fx.write(path, seed=1 + (alignment or 0), alignment=alignment)
        got = cc.info(path)
        hp = got["hparams"]
        tag = f"[align {alignment or 32}]"
        chk.eq((hp["dim"], hp["hidden_dim"], hp["n_layers"], hp["n_heads"], hp["n_kv_heads"]),
               (fx.DIM, fx.HIDDEN, fx.LAYERS, fx.HEADS, fx.KV_HEADS), f"{tag} shape hparams")
        chk.eq(hp["head_dim"], fx.HEAD_DIM, f"{tag} head_dim = dim / heads without key_length")
        chk.eq(hp["n_vocab"], 300, f"{tag} n_vocab = token count without llama.vocab_size")
        chk.eq(hp["max_seq_len"], fx.CTX, f"{tag} max_seq_len")
        chk.eq(hp["rope_theta"], 50000, f"{tag} rope_theta")
        chk.eq(np.float32(hp["norm_eps"]), np.float32(1e-6), f"{tag} norm_eps")
        chk.eq((hp["rope_scaling"], hp["rope_factor"]), (1, 2), f"{tag} linear RoPE scaling x2")
        chk.eq(hp["name"], "tiny-synthetic", f"{tag} name")
        tok = got["tokenizer"]
        toks, scores, types = fx.vocab()
        chk.eq(tok["kind"], 0, f"{tag} SPM kind")
        chk.eq((tok["bos_id"], tok["eos_id"], tok["unk_id"], tok["pad_id"]), (1, 2, 0, -1),
               f"{tag} special ids (unk defaults to 0 for SPM)")
        chk.eq(tok["eot_id"], toks.index("<|end|>"), f"{tag} eot = <|end|>")
        chk.eq((tok["add_bos"], tok["add_space_prefix"]), (True, True), f"{tag} SPM defaults")
        v = cc.vocab(path)
        chk.check(v["tokens"] == [t.encode() for t in toks], f"{tag} tokens")
        chk.check(np.array_equal(np.float32(v["scores"]), np.float32(scores)), f"{tag} scores")
        chk.eq(v["types"], types, f"{tag} token types")
        ours = {t["name"]: t for t in got["tensors"]}
        for name, (raw, qtype, shape) in tensors.items():
            o = ours.get(name)
            if not o:
                chk.check(False, f"{tag} {name} missing")
                continue
            chk.eq(o["dims"], list(shape), f"{tag} {name} dims")
            chk.eq(o["src_type"], qtype.name, f"{tag} {name} src_type")
            want = fx.reference(raw, qtype, shape)
            chk.arrays_equal(cc.tensor(path, name, shape), want, f"{tag} {name} ({qtype.name})")
    # GGUF v2 has the same layout as v3 (64-bit counts): it must read alike
    v2 = os.path.join(d, "tiny-v2.gguf")
    buf = bytearray(open(path, "rb").read())
    buf[4:8] = (2).to_bytes(4, "little")
    open(v2, "wb").write(buf)
    got2 = cc.info(v2)
    chk.eq((got2["hparams"], got2["tensors"]), (got["hparams"], got["tensors"]), "GGUF v2 reads as v3")
    name = "blk.0.ffn_down.weight"
    chk.arrays_equal(cc.tensor(v2, name, tensors[name][2]), fx.reference(*tensors[name]), f"v2 {name}")

    covered = {q for _, q, _ in tensors.values()}
    need = {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K,
            Q.Q5_K, Q.Q6_K, Q.Q8_K}
    chk.eq(sorted(need - covered), [], "every supported type covered")

    # through bllm-convert as bf16
    out = os.path.join(d, "tiny.stb")
    cc.run([cc.CONVERT, path, "-o", out, "--type", "bf16", "-q"])
    s = cc.stb_info(out)
    st = {t["name"]: t for t in s["tensors"]}
    chk.check(all(st[n]["type"] == ("f32" if len(tensors[n][2]) == 1 else "bf16") for n in tensors),
              "bf16 output: 1-D f32, matrices bf16")
    chk.eq(s["meta"].get("llama.rope_scaling.factor"), 2, "stb rope factor")
    for name in ["blk.0.ffn_gate.weight", "blk.1.attn_k.weight", "blk.0.attn_norm.weight"]:
        raw, qtype, shape = tensors[name]
        want = fx.reference(raw, qtype, shape)
        if len(shape) == 2:
            want = cc.to_bf16(want)
        chk.arrays_equal(cc.stb_tensor(out, name, shape), want, f"stb bf16 {name}")

chk.finish()
