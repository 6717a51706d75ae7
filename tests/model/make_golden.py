#!/usr/bin/env python3
"""Regenerate the golden logits the forward-pass tests compare against.

Run with the heavy reference venv (torch + transformers + gguf):
    /root/.cache/bllm/ref-venv/bin/python tests/model/make_golden.py
Inputs come from $BLLM_SHARED/data and $BLLM_CACHE/models (defaults: ../shared
beside the source tree and ~/.cache/bllm). Outputs go beside this script:
    stories260K.golden   llama2.c stories260K, 128 tokens of TinyStories text
    smollm2.golden       SmolLM2-135M-Instruct Q4_1 GGUF, 128 WikiText-2 tokens
    stories260K_greedy.txt  256 greedy tokens from BOS, decoded llama2.c-style

Independence: the weights are loaded into Hugging Face transformers'
LlamaForCausalLM (eager attention), not through any bllm code. The llama2.c
checkpoint is parsed here and its Q/K rows permuted from adjacent-pair RoPE
into HF's rotate_half layout; the GGUF goes through transformers' own GGUF
loader (gguf-py dequantization + its Q/K un-permute), cross-checked against a
model built here from gguf-py tensors with our own inverse permutation.

Precision: the stored logits come from a float64 copy of the float32 weights,
so they are the exact answer for those weights up to float64 rounding; the
float32 PyTorch forward is also run and its distance from the float64 answer
is printed, which is the yardstick for the C side's tolerance (any correct
float32 implementation lands at about that distance, with its own summation
order). Greedy generation uses the float32 model, like the C runtime.

Golden file format (all little-endian):
    char     magic[8]      "BLLMGLD1"
    u32      note_len      then note_len bytes of UTF-8 JSON (provenance,
                           ignored by the C reader)
    u32      n_vocab
    u32      n_tokens
    u32      top_k         (16)
    u32      n_full        number of full logit rows stored at the end
    i32      tokens[n_tokens]          the exact input ids (no BOS added later)
    n_tokens records, one per position p (logits predicting token p+1):
        f32  lse                       log(sum(exp(logits))) of the full row
        i32  top_id[top_k]             ids of the top_k logits, descending
        f32  top_logit[top_k]          their values
    n_full records:
        u32  pos
        f32  logits[n_vocab]
"""
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SRC_ROOT = HERE.parent.parent
SHARED = Path(os.environ.get("BLLM_SHARED", SRC_ROOT.parent / "shared"))
CACHE = Path(os.environ.get("BLLM_CACHE", Path.home() / ".cache" / "bllm"))
DATA = SHARED / "data"
STORIES_BIN = DATA / "stories260K" / "stories260K.bin"
STORIES_TOK = DATA / "stories260K" / "tok512.bin"
STORIES_TEXT = DATA / "stories260K" / "tinystories_excerpt_noncanonical.txt"
WIKI = DATA / "wiki.test.raw"
SMOL_GGUF = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

TOP_K = 16
N_TOKENS = 128
GREEDY_STEPS = 256
# karpathy's published greedy sample for stories260K (llama2.c doc/stories260K.md)
PUBLISHED_START = ("Once upon a time, there was a little girl named Lily. "
                   "She loved to play outside in the park.")

torch.manual_seed(0)
torch.set_num_threads(max(1, os.cpu_count() or 1))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- llama2.c


def read_llama2c(path):
    raw = Path(path).read_bytes()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack_from("<7i", raw, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    w = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = w[off:off + n].reshape(shape).copy()
        off += n
        return a

    t = {}
    t["tok"] = take(vocab, dim)
    t["rms_att"] = take(n_layers, dim)
    t["wq"] = take(n_layers, n_heads * hd, dim)
    t["wk"] = take(n_layers, n_kv * hd, dim)
    t["wv"] = take(n_layers, n_kv * hd, dim)
    t["wo"] = take(n_layers, dim, n_heads * hd)
    t["rms_ffn"] = take(n_layers, dim)
    t["w1"] = take(n_layers, hidden, dim)
    t["w2"] = take(n_layers, dim, hidden)
    t["w3"] = take(n_layers, hidden, dim)
    t["rms_final"] = take(dim)
    t["fcr"] = take(seq_len, hd // 2)
    t["fci"] = take(seq_len, hd // 2)
    if not shared:
        t["wcls"] = take(vocab, dim)
    assert off == w.size, f"{path}: {w.size - off} trailing floats"
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv=n_kv, vocab=vocab, seq_len=seq_len, shared=shared)
    return cfg, t


def interleaved_to_half(w, n_head):
    """Rows of a Q/K projection from adjacent-pair RoPE order (llama2.c, GGUF)
    to rotate_half order (HF): the inverse of convert_hf_to_gguf's permute."""
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def stories_model(cfg, t):
    from transformers import LlamaConfig, LlamaForCausalLM
    hd = cfg["dim"] // cfg["n_heads"]
    # The checkpoint carries its RoPE table: make sure it is theta = 10000.
    inv = 10000.0 ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(cfg["seq_len"])[:, None] * inv[None, :]
    assert np.abs(t["fcr"] - np.cos(ang)).max() < 1e-4
    assert np.abs(t["fci"] - np.sin(ang)).max() < 1e-4
    hc = LlamaConfig(vocab_size=cfg["vocab"], hidden_size=cfg["dim"],
                     intermediate_size=cfg["hidden"], num_hidden_layers=cfg["n_layers"],
                     num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv"],
                     head_dim=hd, max_position_embeddings=cfg["seq_len"],
                     rope_theta=10000.0, rms_norm_eps=1e-5, hidden_act="silu",
                     tie_word_embeddings=cfg["shared"], attention_bias=False,
                     mlp_bias=False, bos_token_id=1, eos_token_id=2,
                     attn_implementation="eager", dtype=torch.float32)
    m = LlamaForCausalLM(hc).float().eval()
    sd = {"model.embed_tokens.weight": t["tok"], "model.norm.weight": t["rms_final"]}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = t["rms_att"][l]
        sd[p + "post_attention_layernorm.weight"] = t["rms_ffn"][l]
        sd[p + "self_attn.q_proj.weight"] = interleaved_to_half(t["wq"][l], cfg["n_heads"])
        sd[p + "self_attn.k_proj.weight"] = interleaved_to_half(t["wk"][l], cfg["n_kv"])
        sd[p + "self_attn.v_proj.weight"] = t["wv"][l]
        sd[p + "self_attn.o_proj.weight"] = t["wo"][l]
        sd[p + "mlp.gate_proj.weight"] = t["w1"][l]
        sd[p + "mlp.down_proj.weight"] = t["w2"][l]
        sd[p + "mlp.up_proj.weight"] = t["w3"][l]
    sd["lm_head.weight"] = t["tok"] if cfg["shared"] else t["wcls"]
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    if cfg["shared"]:
        assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    return m


class Llama2cTokenizer:
    """Transcription of llama2.c run.c's encode/decode over a tokenizer.bin."""

    def __init__(self, path, n_vocab):
        raw = Path(path).read_bytes()
        off = 4
        self.pieces, self.scores = [], []
        for _ in range(n_vocab):
            score, n = struct.unpack_from("<fi", raw, off)
            off += 8
            self.pieces.append(raw[off:off + n])
            self.scores.append(score)
            off += n
        assert off == len(raw)
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)  # first id wins, like bsearch on unique pieces

    def encode(self, text: bytes, bos=True):
        ids = [1] if bos else []
        if text:
            ids.append(self.lookup[b" "])  # sentencepiece's add_dummy_prefix
        i = 0
        while i < len(text):
            # one UTF-8 code point (at most 4 bytes), like run.c
            j = i + 1
            while j < len(text) and (text[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            cp = text[i:j]
            if cp in self.lookup:
                ids.append(self.lookup[cp])
            else:
                ids.extend(b + 3 for b in cp)  # byte fallback: <0x00> is id 3
            i = j
        start = 1 if bos else 0
        while True:
            best, best_id, best_i = -1e10, -1, -1
            for k in range(start, len(ids) - 1):
                merged = self.pieces[ids[k]] + self.pieces[ids[k + 1]]
                tid = self.lookup.get(merged)
                if tid is not None and self.scores[tid] > best:
                    best, best_id, best_i = self.scores[tid], tid, k
            if best_i < 0:
                break
            ids[best_i:best_i + 2] = [best_id]
        return ids

    def decode_piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        return p

    def decode(self, ids, prev=1):
        out = b""
        for t in ids:
            out += self.decode_piece(prev, t)
            prev = t
        return out


# ---------------------------------------------------------------- SmolLM2


def smol_model_transformers():
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(
        str(SMOL_GGUF.parent), gguf_file=SMOL_GGUF.name, dtype=torch.float32,
        attn_implementation="eager")
    # The loaded model is flagged as quantized, which forbids dtype changes;
    # its weights are already dequantized float32, so move them to a plain model.
    from transformers import LlamaForCausalLM
    assert m.config.model_type == "llama"
    m.config.quantization_config = None
    plain = LlamaForCausalLM._from_config(m.config, attn_implementation="eager",
                                          dtype=torch.float32).eval()
    missing, unexpected = plain.load_state_dict(m.state_dict(), strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return plain


def smol_model_ggufpy():
    """Independent build from gguf-py's dequantized tensors, to check the
    transformers GGUF path (notably its Q/K un-permute)."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM
    r = gguf.GGUFReader(str(SMOL_GGUF))
    f = {k: v.contents() for k, v in r.fields.items()
         if not k.startswith("tokenizer.")}
    n_head = f["llama.attention.head_count"]
    n_kv = f["llama.attention.head_count_kv"]
    dim = f["llama.embedding_length"]
    tensors = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).reshape(
        [int(x) for x in reversed(t.shape)]).astype(np.float32) for t in r.tensors}
    hc = LlamaConfig(vocab_size=tensors["token_embd.weight"].shape[0], hidden_size=dim,
                     intermediate_size=f["llama.feed_forward_length"],
                     num_hidden_layers=f["llama.block_count"],
                     num_attention_heads=n_head, num_key_value_heads=n_kv,
                     head_dim=dim // n_head,
                     max_position_embeddings=f["llama.context_length"],
                     rope_theta=float(f["llama.rope.freq_base"]),
                     rms_norm_eps=float(f["llama.attention.layer_norm_rms_epsilon"]),
                     tie_word_embeddings="output.weight" not in tensors,
                     attn_implementation="eager", dtype=torch.float32)
    m = LlamaForCausalLM(hc).float().eval()
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"],
          "model.norm.weight": tensors["output_norm.weight"]}
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for l in range(hc.num_hidden_layers):
        for g, h in names.items():
            w = tensors[f"blk.{l}.{g}.weight"]
            if g == "attn_q":
                w = interleaved_to_half(w, n_head)
            elif g == "attn_k":
                w = interleaved_to_half(w, n_kv)
            sd[f"model.layers.{l}.{h}.weight"] = w
    sd["lm_head.weight"] = tensors.get("output.weight", tensors["token_embd.weight"])
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return m


def smol_tokens():
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(SMOL_GGUF.parent), gguf_file=SMOL_GGUF.name)
    text = WIKI.read_bytes()[:2000].decode("utf-8")
    ids = tok(text, add_special_tokens=True)["input_ids"]
    assert ids[0] != 1, "SmolLM2 should not get a BOS"
    ids = ids[:N_TOKENS]
    return ids, tok.decode(ids)


# ---------------------------------------------------------------- common


@torch.no_grad()
def logits_of(model, ids, dtype):
    m = model.to(dtype)
    x = torch.tensor([ids], dtype=torch.long)
    out = m(input_ids=x, use_cache=False).logits[0]
    model.to(torch.float32)
    return out


def write_golden(path, note, n_vocab, ids, logits64, full_pos):
    lg = logits64.double()
    lse = torch.logsumexp(lg, dim=-1)
    top_v, top_i = torch.topk(lg, TOP_K, dim=-1)
    with open(path, "wb") as f:
        nb = json.dumps(note, sort_keys=True).encode()
        f.write(b"BLLMGLD1")
        f.write(struct.pack("<I", len(nb)))
        f.write(nb)
        f.write(struct.pack("<4I", n_vocab, len(ids), TOP_K, len(full_pos)))
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        for p in range(len(ids)):
            f.write(struct.pack("<f", float(lse[p])))
            f.write(top_i[p].numpy().astype("<i4").tobytes())
            f.write(top_v[p].numpy().astype("<f4").tobytes())
        for p in full_pos:
            f.write(struct.pack("<I", p))
            f.write(lg[p].numpy().astype("<f4").tobytes())
    return os.path.getsize(path)


def report(name, ids, l32, l64):
    """Print how far float32 PyTorch sits from the float64 answer: the same
    metrics the C test computes."""
    top_v, top_i = torch.topk(l64, TOP_K, dim=-1)
    d_top = (l32.double().gather(1, top_i) - top_v).abs().max().item()
    d_lse = (torch.logsumexp(l32.double(), -1) - torch.logsumexp(l64, -1)).abs().max().item()
    agree = (l32.argmax(-1) == l64.argmax(-1)).float().mean().item()
    margin = (top_v[:, 0] - top_v[:, 1]).min().item()
    nll = torch.nn.functional.cross_entropy(l64[:-1], torch.tensor(ids[1:])).item()
    print(f"{name}: {len(ids)} tokens, f32 vs f64: max|d top{TOP_K}| {d_top:.3e}, "
          f"max|d lse| {d_lse:.3e}, top-1 agreement {agree * 100:.1f}%, "
          f"min top1-top2 margin {margin:.3e}, mean NLL {nll:.3f}")
    return dict(f32_vs_f64_top=d_top, f32_vs_f64_lse=d_lse, min_margin=margin, nll=nll)


def main():
    for p in (STORIES_BIN, STORIES_TOK, STORIES_TEXT, WIKI, SMOL_GGUF):
        if not p.exists():
            sys.exit(f"missing input {p} (set BLLM_SHARED / BLLM_CACHE)")

    # ---- stories260K
    cfg, t = read_llama2c(STORIES_BIN)
    model = stories_model(cfg, t)
    tk = Llama2cTokenizer(STORIES_TOK, cfg["vocab"])

    # greedy from BOS in float32, token by token with the KV cache (as the
    # runtime does); stops early only at EOS/BOS, which llama2.c treats as end
    ids = [1]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1]]), use_cache=True)
        past = out.past_key_values
        for _ in range(GREEDY_STEPS):
            nxt = int(out.logits[0, -1].argmax())
            if nxt in (1, 2):
                break
            ids.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
    # the same sequence through one full-sequence forward must give the same argmaxes
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids])).logits[0]
    assert full[:-1].argmax(-1).tolist() == ids[1:], "cached vs full greedy differ"
    text = tk.decode(ids[1:]).decode("utf-8")
    print(f"stories260K greedy ({len(ids) - 1} tokens):\n{text}\n")
    if not text.startswith(PUBLISHED_START):
        sys.exit("stories260K greedy sample does not match karpathy's published text: "
                 "the weight loading is wrong")
    (HERE / "stories260K_greedy.txt").write_text(text, encoding="utf-8")

    excerpt = STORIES_TEXT.read_bytes()[:600]
    sids = tk.encode(excerpt)[:N_TOKENS]
    assert len(sids) == N_TOKENS
    print("stories260K input:", repr(tk.decode(sids[1:]).decode()), "\n")
    l32 = logits_of(model, sids, torch.float32)
    l64 = logits_of(model, sids, torch.float64)
    st = report("stories260K", sids, l32, l64)
    note = dict(model="stories260K", source=str(STORIES_BIN.name), sha256=sha256(STORIES_BIN),
                text=f"{STORIES_TEXT.name} first 600 bytes, llama2.c encode, first {N_TOKENS}",
                reference="transformers LlamaForCausalLM eager, float64", **st)
    size = write_golden(HERE / "stories260K.golden", note, cfg["vocab"], sids, l64,
                        [0, N_TOKENS - 1])
    print(f"wrote stories260K.golden ({size} bytes)\n")

    # ---- SmolLM2
    ids, text = smol_tokens()
    print("smollm2 input:", repr(text), "\n")
    m1 = smol_model_transformers()
    m2 = smol_model_ggufpy()
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), f"transformers vs gguf-py weights differ at {k}"
    print(f"smollm2: transformers' GGUF loader and gguf-py + our permute agree on all "
          f"{len(s1)} tensors")
    del m2
    l32 = logits_of(m1, ids, torch.float32)
    l64 = logits_of(m1, ids, torch.float64)
    st = report("smollm2", ids, l32, l64)
    note = dict(model="SmolLM2-135M-Instruct", source=SMOL_GGUF.name, sha256=sha256(SMOL_GGUF),
                text=f"{WIKI.name} first 2000 bytes, HF tokenizer from the GGUF, first {N_TOKENS}",
                reference="transformers LlamaForCausalLM (GGUF loader) eager, float64", **st)
    size = write_golden(HERE / "smollm2.golden", note, m1.config.vocab_size, ids, l64, [])
    print(f"wrote smollm2.golden ({size} bytes)")


if __name__ == "__main__":
    main()
