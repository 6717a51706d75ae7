"""Seed corpora for the fuzz harnesses (fuzz/README in docs/robustness.md):
small valid inputs of every kind, made here rather than committed.
  usage: make_corpus.py OUT_DIR BUILD_DIR [STAMP]
writes OUT_DIR/{stb,gguf,hf,llama2c,tokenizer}/; needs gguf, numpy,
safetensors and tokenizers (the test venv), BLLM_SHARED for the llama2.c
tokenizer, and BUILD_DIR's bllm-convert / bllm-quantize for the .stb seeds."""
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "convert"))
import gguf_fixture  # noqa: E402

SEP = b"\n--8<--\n"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def gguf_seeds(out):
    p = os.path.join(out, "gguf", "tiny.gguf")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    gguf_fixture.write(p, seed=1)
    return p


def stb_seeds(out, gguf_path, build):
    d = os.path.join(out, "stb")
    os.makedirs(d, exist_ok=True)
    tools = os.path.join(build, "tools")
    f32 = os.path.join(d, "tiny-f32.stb")
    subprocess.run([os.path.join(tools, "bllm-convert"), gguf_path, "-o", f32, "-q", "--force"], check=True,
                   stdout=subprocess.DEVNULL)
    for t in ("b1g", "nm48", "pb8"):
        subprocess.run([os.path.join(tools, "bllm-quantize"), f32, "--type", t, "-o", os.path.join(d, f"tiny-{t}.stb"),
                        "-q", "--force"], check=True, stdout=subprocess.DEVNULL)


def llama2c_seed(out, shared):
    """A tiny llama2.c checkpoint (legacy layout, shared classifier) and the
    stories260K tokenizer.bin (512 pieces), as one input."""
    dim, hidden, layers, heads, kv, vocab, seq = 16, 32, 1, 2, 2, 512, 8
    hd = dim // heads
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32).tobytes()

    body = w(vocab, dim) + w(layers, dim) + w(layers, dim, dim) + w(layers, kv * hd, dim) * 2 + w(layers, dim, dim)
    body += w(layers, dim) + w(layers, hidden, dim) + w(layers, dim, hidden) + w(layers, hidden, dim) + w(dim)
    body += w(seq, hd // 2) * 2
    ckpt = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) + body
    tok = open(os.path.join(shared, "data", "stories260K", "tok512.bin"), "rb").read()
    write(os.path.join(out, "llama2c", "tiny.bin"), ckpt + SEP + tok)


def hf_seed(out):
    from safetensors.numpy import save
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"], show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 20, tr)
    V, D, H = tk.get_vocab_size(), 64, 96
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": D,
           "intermediate_size": H, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": V, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64,
           "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0}
    rng = np.random.default_rng(0)
    t = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    p = "model.layers.0."
    t.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
              p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (32, D),
              p + "self_attn.v_proj.weight": (32, D), p + "self_attn.o_proj.weight": (D, D),
              p + "mlp.gate_proj.weight": (H, D), p + "mlp.up_proj.weight": (H, D), p + "mlp.down_proj.weight": (D, H)})
    tensors = {k: (rng.standard_normal(s) * 0.1).astype(np.float16) for k, s in t.items()}
    data = json.dumps(cfg).encode() + SEP + tk.to_str().encode() + SEP + save(tensors)
    write(os.path.join(out, "hf", "tiny.bin"), data)


def tokenizer_seeds(out):
    texts = ["Once upon a time, there was a little girl.", "  leading spaces and\ttabs\n\nnewlines",
             "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "<s> </s> <unk> [INST]",
             "unicode: héllo wörld 你好 🙂 ﬁ", "digits 1234567890 and 3.14159", b"\xff\xfe invalid utf-8 \xc3"]
    for i, t in enumerate(texts):
        for sel in (0, 1, 2):
            data = t.encode("utf-8") if isinstance(t, str) else t
            write(os.path.join(out, "tokenizer", f"t{i}-{sel}.txt"), bytes([sel | (0x80 if i % 2 else 0)]) + data)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    out, build = sys.argv[1], sys.argv[2]
    shared = os.environ.get("BLLM_SHARED", os.path.join(HERE, "..", "..", "shared"))
    g = gguf_seeds(out)
    stb_seeds(out, g, build)
    llama2c_seed(out, shared)
    hf_seed(out)
    tokenizer_seeds(out)
    if len(sys.argv) == 4:
        open(sys.argv[3], "w").write(out + "\n")
    print(f"make_corpus: seeds in {out}")


if __name__ == "__main__":
    main()
