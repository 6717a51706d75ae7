"""SmolLM2-135M-Instruct Q4_1 GGUF: what the importer reads (hyperparameters,
tokenizer, tensor list, dequantized values) against gguf-py's GGUFReader and
gguf.quants.dequantize, then the same model through bllm-convert --type f16
read back with the .stb reader. Dequantized values must be bit-identical."""
import hashlib
import os
import tempfile

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize

import convert_common as cc

cc.require(cc.SMOLLM2, "default model SmolLM2-135M-Instruct.Q4_1.gguf")
chk = cc.Checker("gguf-smollm2")
r = GGUFReader(cc.SMOLLM2)


def field(key):
    return r.fields[key].contents()


got = cc.info(cc.SMOLLM2)
hp = got["hparams"]
chk.eq(got["kind"], "gguf", "kind")
chk.eq(hp["name"], field("general.name"), "general.name")
chk.eq(hp["dim"], field("llama.embedding_length"), "dim")
chk.eq(hp["hidden_dim"], field("llama.feed_forward_length"), "hidden_dim")
chk.eq(hp["n_layers"], field("llama.block_count"), "n_layers")
chk.eq(hp["n_heads"], field("llama.attention.head_count"), "n_heads")
chk.eq(hp["n_kv_heads"], field("llama.attention.head_count_kv"), "n_kv_heads")
chk.eq(hp["head_dim"], field("llama.embedding_length") // field("llama.attention.head_count"), "head_dim")
chk.eq(hp["max_seq_len"], field("llama.context_length"), "max_seq_len")
chk.eq(np.float32(hp["rope_theta"]), np.float32(field("llama.rope.freq_base")), "rope_theta")
chk.eq(np.float32(hp["norm_eps"]), np.float32(field("llama.attention.layer_norm_rms_epsilon")), "norm_eps")
chk.eq(hp["n_vocab"], field("llama.vocab_size"), "n_vocab")
chk.eq(hp["rope_scaling"], 0, "rope_scaling")

# tokenizer
tok = got["tokenizer"]
ref_tokens = [bytes(t, "utf-8") for t in field("tokenizer.ggml.tokens")]
chk.eq(tok["kind"], 1, "tokenizer kind (BPE)")
chk.eq(tok["n_vocab"], len(ref_tokens), "tokenizer n_vocab")
chk.eq(tok["pre"], field("tokenizer.ggml.pre"), "pre")
chk.eq(tok["bos_id"], field("tokenizer.ggml.bos_token_id"), "bos")
chk.eq(tok["eos_id"], field("tokenizer.ggml.eos_token_id"), "eos")
chk.eq(tok["unk_id"], field("tokenizer.ggml.unknown_token_id"), "unk")
chk.eq(tok["pad_id"], field("tokenizer.ggml.padding_token_id"), "pad")
chk.eq(tok["eot_id"], ref_tokens.index(b"<|im_end|>"), "eot = <|im_end|>")
chk.eq(tok["add_bos"], field("tokenizer.ggml.add_bos_token"), "add_bos")
chk.eq(tok["add_space_prefix"], field("tokenizer.ggml.add_space_prefix"), "add_space_prefix")
chk.eq(got["chat_template"], field("tokenizer.chat_template"), "chat template")
v = cc.vocab(cc.SMOLLM2)
chk.check(v["tokens"] == ref_tokens, "all 49152 token strings")
chk.check(v["types"] == [int(x) for x in field("tokenizer.ggml.token_type")], "all token types")
chk.check(v["merges"] == [bytes(m, "utf-8") for m in field("tokenizer.ggml.merges")], "all merges")
chk.eq(v["scores"], [], "no scores for BPE")

# tensor list: names, PyTorch-order dims, source types
ours = {t["name"]: t for t in got["tensors"]}
chk.eq([t["name"] for t in got["tensors"]], [t.name for t in r.tensors], "tensor names in file order")
for t in r.tensors:
    o = ours.get(t.name)
    if o:
        chk.eq(o["dims"], [int(x) for x in reversed(t.shape)], f"{t.name} dims")
        chk.eq(o["src_type"], t.tensor_type.name, f"{t.name} src_type")
chk.eq(got["sha256"], hashlib.sha256(open(cc.SMOLLM2, "rb").read()).hexdigest(), "sha256")

# dequantized values, bit for bit
by_name = {t.name: t for t in r.tensors}
picks = ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight", "blk.29.attn_k.weight",
         "blk.0.attn_norm.weight", "output_norm.weight"]
seen_types = set()
for name in picks:
    t = by_name[name]
    seen_types.add(t.tensor_type)
    want = dequantize(t.data, t.tensor_type).reshape(ours[name]["dims"])
    chk.arrays_equal(cc.tensor(cc.SMOLLM2, name, ours[name]["dims"]), want, f"{name} ({t.tensor_type.name})")
chk.check({GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.F32} <= seen_types,
          "covered Q8_0, Q4_1 and F32")

# the whole model through bllm-convert, then read back
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "smollm2-f16.stb")
    p = cc.run([cc.CONVERT, cc.SMOLLM2, "-o", out, "--type", "f16"])
    chk.check("wrote" in p.stdout, f"summary line printed: {p.stdout.strip()!r}")
    s = cc.stb_info(out)
    m = s["meta"]
    chk.eq(m.get("general.architecture"), "llama", "general.architecture")
    chk.eq(m.get("general.name"), field("general.name"), "stb general.name")
    chk.eq(m.get("llama.dim"), 576, "stb llama.dim")
    chk.eq(m.get("llama.n_kv_heads"), 3, "stb llama.n_kv_heads")
    chk.eq(m.get("tokenizer.chat_template"), field("tokenizer.chat_template"), "stb chat template")
    chk.eq(m.get("provenance.source_path"), os.path.realpath(cc.SMOLLM2), "provenance.source_path")
    chk.eq(m.get("provenance.source_sha256"), got["sha256"], "provenance.source_sha256")
    chk.eq(m.get("provenance.source_format"), "gguf", "provenance.source_format")
    chk.check(str(m.get("provenance.created_by", "")).startswith("bllm-convert "), "provenance.created_by")
    chk.check("--type f16" in str(m.get("provenance.options", "")), "provenance.options")
    st = {t["name"]: t for t in s["tensors"]}
    chk.eq(sorted(st), sorted(ours), "stb tensor names")
    chk.check(all(st[n]["type"] == ("f32" if len(ours[n]["dims"]) == 1 else "f16") for n in st),
              "1-D tensors f32, matrices f16")
    chk.check(all(st[n]["dims"] == ours[n]["dims"] for n in st), "stb dims")
    for name in ["blk.0.attn_q.weight", "token_embd.weight", "output_norm.weight"]:
        t = by_name[name]
        want = dequantize(t.data, t.tensor_type).reshape(ours[name]["dims"])
        if want.ndim == 2:
            want = cc.to_f16(want)
        chk.arrays_equal(cc.stb_tensor(out, name, ours[name]["dims"]), want, f"stb {name}")

chk.finish()
