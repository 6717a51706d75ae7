"""A tiny but complete Llama GGUF written with gguf-py's GGUFWriter, every
matrix in a different ggml type, for the synthetic and bad-input tests.
Types gguf-py can quantize go through gguf.quants.quantize; the k-quants it
cannot produce are random block bytes with finite, small f16 scales."""
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, CTX = 256, 512, 2, 4, 2, 128
HEAD_DIM = DIM // HEADS

# tensor -> ggml type; every type the importer must dequantize appears once
TYPES = {
    "token_embd.weight": Q.Q8_0,
    "blk.0.attn_q.weight": Q.Q4_0,
    "blk.0.attn_k.weight": Q.Q4_1,
    "blk.0.attn_v.weight": Q.Q5_0,
    "blk.0.attn_output.weight": Q.Q5_1,
    "blk.0.ffn_gate.weight": Q.Q4_K,
    "blk.0.ffn_up.weight": Q.Q6_K,
    "blk.0.ffn_down.weight": Q.Q5_K,
    "blk.1.attn_q.weight": Q.Q2_K,
    "blk.1.attn_k.weight": Q.Q3_K,
    "blk.1.attn_v.weight": Q.F16,
    "blk.1.attn_output.weight": Q.BF16,
    "blk.1.ffn_gate.weight": Q.Q8_K,
    "blk.1.ffn_up.weight": Q.F32,
    "blk.1.ffn_down.weight": Q.Q4_K,
    "output.weight": Q.F16,
}


def vocab():
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = ["\u2581" + c for c in "abcdefghijklmnopqrstuvwxyz"] + ["\u2581the", "\u2581and", "<|end|>"]
    words += [f"w{i}" for i in range(300 - len(toks) - len(words))]
    toks += words
    types += [3 if w == "<|end|>" else 1 for w in words]
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    return toks, scores, types


def shapes():
    kv = KV_HEADS * HEAD_DIM
    s = {"token_embd.weight": (300, DIM), "output.weight": (300, DIM), "output_norm.weight": (DIM,)}
    for l in range(LAYERS):
        s.update({f"blk.{l}.attn_norm.weight": (DIM,), f"blk.{l}.ffn_norm.weight": (DIM,),
                  f"blk.{l}.attn_q.weight": (DIM, DIM), f"blk.{l}.attn_k.weight": (kv, DIM),
                  f"blk.{l}.attn_v.weight": (kv, DIM), f"blk.{l}.attn_output.weight": (DIM, DIM),
                  f"blk.{l}.ffn_gate.weight": (HIDDEN, DIM), f"blk.{l}.ffn_up.weight": (HIDDEN, DIM),
                  f"blk.{l}.ffn_down.weight": (DIM, HIDDEN)})
    return s


def raw_blocks(qtype, rows, cols, rng):
    """Random but valid blocks: only the scale fields need care (finite)."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    n = rows * cols // bs
    b = rng.integers(0, 256, size=(n, ts), dtype=np.uint8)

    def f16(off):
        v = (rng.standard_normal(n) * 0.01).astype(np.float16)
        b[:, off:off + 2] = v.view(np.uint8).reshape(n, 2)

    if qtype == Q.Q2_K:
        f16(80), f16(82)
    elif qtype == Q.Q3_K:
        f16(108)
    elif qtype in (Q.Q4_K, Q.Q5_K):
        f16(0), f16(2)
    elif qtype == Q.Q6_K:
        f16(208)
    elif qtype == Q.Q8_K:
        b[:, 0:4] = (rng.standard_normal(n) * 0.01).astype(np.float32).view(np.uint8).reshape(n, 4)
    else:
        raise ValueError(qtype)
    return b.reshape(rows, cols // bs * ts)


def reference(raw, qtype, shape):
    """gguf-py's dequantization; Q8_K, which gguf-py lacks, by its ggml
    definition (f32 d times int8 q)."""
    if qtype == Q.Q8_K:
        blocks = raw.reshape(-1, GGML_QUANT_SIZES[qtype][1])
        d = blocks[:, :4].copy().view(np.float32)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(shape)
    return gguf.quants.dequantize(raw, qtype).reshape(shape).astype(np.float32)


def write(path, seed=0, alignment=None, extra_kv=None, edit_tokens=None):
    """Writes the model; returns {name: (raw array, qtype, PyTorch shape)}.
    edit_tokens: a function that may change the token list in place."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-synthetic")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(HIDDEN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(2.0)
    toks, scores, types = vocab()
    if edit_tokens:
        edit_tokens(toks)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    for k, v in (extra_kv or {}).items():
        w.add_uint32(k, v)
    out = {}
    for name, shape in shapes().items():
        qtype = TYPES.get(name, Q.F32)
        data = rng.standard_normal(shape).astype(np.float32) * 0.05
        if len(shape) == 1:
            data = data + 1.0
        if qtype == Q.F32:
            raw = data
        elif qtype == Q.F16:
            raw = data.astype(np.float16)
        elif qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q2_K, Q.Q3_K, Q.Q8_K):
            raw = raw_blocks(qtype, shape[0], shape[1], rng)
        else:
            raw = gguf.quants.quantize(data, qtype)
        w.add_tensor(name, raw, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
        out[name] = (raw, qtype, shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
