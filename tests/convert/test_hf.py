"""HF checkpoint folders made here: tiny random Llamas in safetensors (two
shards, F32/F16 through the safetensors library, BF16 written by hand) with
config.json, tokenizer.json trained with HF tokenizers and
tokenizer_config.json. Checks: hyperparameters (incl. llama3 and linear
RoPE scaling, explicit head_dim), GGUF names in canonical order, values
equal to the source, Q/K equal to llama.cpp's permute() written in numpy,
tied lm_head dropped, pre-tokenizer naming (smollm, gpt2, llama3), merges in
both JSON forms, special tokens, chat template, the provenance hash, a
SentencePiece tokenizer.model checked against the sentencepiece module, and
clear failures for biases and non-byte-level tokenizer.json."""
import hashlib
import json
import os
import shutil
import struct
import tempfile

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import convert_common as cc

chk = cc.Checker("hf")

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
             r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEXT = [f"The {w} number {i} jumped over {j} lazy dogs, didn't it? Yes: {i * j}!\n"
        for i, w in enumerate(["quick", "brown", "small", "red", "tiny", "old"] * 20) for j in (3, 17)]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (K passes n_kv_heads)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def make_tokenizer(path, pre, vocab_size=400, post_bos=False):
    tk = Tokenizer(models.BPE())
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre != "llama3")
    if pre == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl])
    elif pre == "llama3":
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False), bl])
    else:
        tk.pre_tokenizer = bl
    tk.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(TEXT, tr)
    if post_bos:
        tk.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", pair="<|endoftext|> $A <|endoftext|> $B",
            special_tokens=[("<|endoftext|>", tk.token_to_id("<|endoftext|>"))])
    tk.save(path)
    return tk


def save_raw(path, tensors):
    """A safetensors file by hand (the numpy API has no bfloat16)."""
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16(x):
    """(bytes of x rounded to bf16, the f32 values they hold)"""
    r = cc.to_bf16(x)
    return (r.view(np.uint32) >> 16).astype(np.uint16).tobytes(), r


def make_model(d, cfg, seed, tied_keep_lm_head=False, extra=None):
    """Random weights for cfg; returns {hf name: f32 values as stored}."""
    rng = np.random.default_rng(seed)
    D, H, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or D // nh
    V = cfg["vocab_size"]
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    if not cfg.get("tie_word_embeddings") or tied_keep_lm_head:
        shapes["lm_head.weight"] = (V, D)
    for l in range(L):
        p = f"model.layers.{l}."
        shapes.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                       p + "self_attn.q_proj.weight": (nh * hd, D), p + "self_attn.k_proj.weight": (nkv * hd, D),
                       p + "self_attn.v_proj.weight": (nkv * hd, D), p + "self_attn.o_proj.weight": (D, nh * hd),
                       p + "mlp.gate_proj.weight": (H, D), p + "mlp.up_proj.weight": (H, D),
                       p + "mlp.down_proj.weight": (D, H)})
    shapes.update(extra or {})
    shard1, shard2, values = {}, {}, {}
    for i, (name, shape) in enumerate(sorted(shapes.items())):
        x = rng.standard_normal(shape).astype(np.float32) * 0.1
        kind = i % 3  # round-robin F32, F16, BF16
        if kind == 0:
            shard1[name] = x
            values[name] = x
        elif kind == 1:
            shard1[name] = x.astype(np.float16)
            values[name] = cc.to_f16(x)
        else:
            raw, values[name] = bf16(x)
            shard2[name] = ("BF16", shape, raw)
    save_file(shard1, os.path.join(d, "model-00001-of-00002.safetensors"))
    save_raw(os.path.join(d, "model-00002-of-00002.safetensors"), shard2)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return values


def manifest_sha(files):
    lines = "".join(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  {os.path.basename(p)}\n"
                    for p in sorted(files, key=os.path.basename))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_tensors(tag, d, cfg, values, tied):
    got = cc.info(d)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    names = [t["name"] for t in got["tensors"]]
    want = ["token_embd.weight"]
    for l in range(cfg["num_hidden_layers"]):
        want += [f"blk.{l}.{n}.weight" for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                  "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
    want += ["output_norm.weight"] + ([] if tied else ["output.weight"])
    chk.eq(names, want, f"{tag} GGUF names in canonical order")
    hf = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}
    for l in range(cfg["num_hidden_layers"]):
        for g, h in [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"),
                     ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                     ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                     ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]:
            hf[f"blk.{l}.{g}.weight"] = f"model.layers.{l}.{h}.weight"
    for t in got["tensors"]:
        src = values[hf[t["name"]]]
        chk.eq(t["dims"], list(src.shape), f"{tag} {t['name']} dims")
        ref = src
        if ".attn_q." in t["name"]:
            ref = permute(src, nh)
        elif ".attn_k." in t["name"]:
            ref = permute(src, nkv)
        chk.arrays_equal(cc.tensor(d, t["name"], src.shape), ref, f"{tag} {t['name']}")
    return got


def check_vocab(tag, d, tk, tokenizer_json):
    v = cc.vocab(d)
    inv = {i: t for t, i in tk.get_vocab(with_added_tokens=True).items()}
    chk.eq(len(v["tokens"]), len(inv), f"{tag} vocab size")
    chk.check(v["tokens"] == [inv[i].encode() for i in range(len(inv))], f"{tag} token strings by id")
    special = {tk.token_to_id(s) for s in SPECIAL}
    chk.eq(v["types"], [3 if i in special else 1 for i in range(len(inv))], f"{tag} token types")
    merges = json.load(open(tokenizer_json))["model"]["merges"]
    ref = [(m if isinstance(m, str) else " ".join(m)).encode() for m in merges]
    chk.check(len(ref) > 0 and v["merges"] == ref, f"{tag} merges ({len(ref)})")


with tempfile.TemporaryDirectory() as root:
    # ---- 1: SmolLM-style tokenizer, llama3 RoPE scaling, separate lm_head
    d = os.path.join(root, "tiny-llama")
    os.makedirs(d)
    tk = make_tokenizer(os.path.join(d, "tokenizer.json"), "smollm")
    V = tk.get_vocab_size()
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
           "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "max_position_embeddings": 256, "rope_theta": 500000.0,
           "rms_norm_eps": 1e-5, "vocab_size": V, "tie_word_embeddings": False, "hidden_act": "silu",
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    values = make_model(d, cfg, seed=1)
    tmpl = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": {"content": "<|im_end|>", "special": True},
                   "add_bos_token": False, "chat_template": tmpl}, f)
    got = check_tensors("[smollm]", d, cfg, values, tied=False)
    hp = got["hparams"]
    chk.eq((hp["dim"], hp["hidden_dim"], hp["n_layers"], hp["n_heads"], hp["n_kv_heads"], hp["head_dim"],
            hp["max_seq_len"], hp["n_vocab"]), (64, 96, 2, 4, 2, 16, 256, V), "[smollm] hparams")
    chk.eq((hp["rope_theta"], np.float32(hp["norm_eps"])), (500000, np.float32(1e-5)), "[smollm] theta, eps")
    chk.eq((hp["rope_scaling"], hp["rope_factor"], hp["rope_low_freq_factor"], hp["rope_high_freq_factor"],
            hp["rope_orig_max_seq"]), (2, 8, 1, 4, 8192), "[smollm] llama3 RoPE scaling")
    chk.eq(hp["name"], "tiny-llama", "[smollm] name = folder name")
    t = got["tokenizer"]
    chk.eq((t["kind"], t["pre"]), (1, "smollm"), "[smollm] BPE, pre smollm")
    chk.eq((t["bos_id"], t["eos_id"], t["eot_id"], t["add_bos"]),
           (tk.token_to_id("<|endoftext|>"), tk.token_to_id("<|im_end|>"), tk.token_to_id("<|im_end|>"), False),
           "[smollm] bos/eos/eot/add_bos from tokenizer_config.json")
    chk.eq(got["chat_template"], tmpl, "[smollm] chat template")
    check_vocab("[smollm]", d, tk, os.path.join(d, "tokenizer.json"))
    files = [os.path.join(d, f) for f in os.listdir(d)]
    chk.eq(got["sha256"], manifest_sha(files), "[smollm] provenance hash = sha256 of the sha256sum manifest")

    out = os.path.join(root, "tiny.stb")
    cc.run([cc.CONVERT, d, "-o", out, "-q"])
    s = cc.stb_info(out)
    chk.eq(s["meta"].get("provenance.source_format"), "hf", "[smollm] stb source format")
    chk.eq(s["meta"].get("llama.rope_scaling.original_max_seq_len"), 8192, "[smollm] stb llama3 orig ctx")
    q = values["model.layers.1.self_attn.k_proj.weight"]
    chk.arrays_equal(cc.stb_tensor(out, "blk.1.attn_k.weight", q.shape), permute(q, 2), "[smollm] stb attn_k")

    # ---- 2: plain ByteLevel (gpt2), "a b" merges, tied + lm_head present,
    # explicit head_dim, linear scaling, ids from config.json
    d2 = os.path.join(root, "tied")
    os.makedirs(d2)
    tk2 = make_tokenizer(os.path.join(d2, "tokenizer.json"), "gpt2")
    j = json.load(open(os.path.join(d2, "tokenizer.json")))
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    json.dump(j, open(os.path.join(d2, "tokenizer.json"), "w"))
    cfg2 = dict(cfg, head_dim=32, tie_word_embeddings=True, vocab_size=tk2.get_vocab_size(),
                rope_scaling={"type": "linear", "factor": 4.0}, bos_token_id=1, eos_token_id=[2, 0])
    values2 = make_model(d2, cfg2, seed=2, tied_keep_lm_head=True)
    got2 = check_tensors("[gpt2]", d2, cfg2, values2, tied=True)
    hp2, t2 = got2["hparams"], got2["tokenizer"]
    chk.eq((hp2["head_dim"], hp2["rope_scaling"], hp2["rope_factor"]), (32, 1, 4), "[gpt2] head_dim, linear x4")
    chk.eq((t2["pre"], t2["bos_id"], t2["eos_id"], t2["add_bos"]), ("gpt2", 1, 2, False),
           "[gpt2] pre gpt2, ids from config.json")
    chk.eq(got2["chat_template"], None, "[gpt2] no chat template")
    check_vocab("[gpt2]", d2, tk2, os.path.join(d2, "tokenizer.json"))

    # ---- 3: Llama-3 pre-tokenizer; add_bos from the post-processor template
    d3 = os.path.join(root, "llama3")
    shutil.copytree(d, d3)
    tk3 = make_tokenizer(os.path.join(d3, "tokenizer.json"), "llama3", vocab_size=V, post_bos=True)
    with open(os.path.join(d3, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"}, f)
    if tk3.get_vocab_size() == V:
        t3 = cc.info(d3)["tokenizer"]
        chk.eq((t3["pre"], t3["add_bos"], t3["bos_id"]), ("llama3", True, tk3.token_to_id("<|endoftext|>")),
               "[llama3] pre llama3, add_bos from TemplateProcessing")
        check_vocab("[llama3]", d3, tk3, os.path.join(d3, "tokenizer.json"))
    else:
        chk.check(False, f"[llama3] tokenizer trained to {tk3.get_vocab_size()} tokens, wanted {V}")

    # ---- 4: SentencePiece tokenizer.model (Llama-2's)
    spm_path = os.path.join(cc.SHARED, "data", "llama2-tokenizer", "tokenizer.model")
    cc.require(spm_path, "Llama-2 tokenizer.model in the shared data")
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    d4 = os.path.join(root, "spm")
    os.makedirs(d4)
    shutil.copy(spm_path, os.path.join(d4, "tokenizer.model"))
    cfg4 = dict(cfg, vocab_size=sp.get_piece_size(), num_hidden_layers=1, rope_scaling=None)
    make_model(d4, cfg4, seed=4)
    got4 = cc.info(d4)
    t4 = got4["tokenizer"]
    chk.eq((t4["kind"], t4["n_vocab"], t4["bos_id"], t4["eos_id"], t4["unk_id"], t4["add_bos"],
            t4["add_space_prefix"]), (0, sp.get_piece_size(), sp.bos_id(), sp.eos_id(), sp.unk_id(), True, True),
           "[spm] SPM kind, ids and defaults")
    chk.eq(got4["hparams"]["rope_scaling"], 0, "[spm] rope_scaling null")
    v4 = cc.vocab(d4)
    n = sp.get_piece_size()
    chk.check(v4["tokens"] == [sp.id_to_piece(i).encode() for i in range(n)], "[spm] pieces")
    chk.check(np.array_equal(np.float32(v4["scores"]), np.float32([sp.get_score(i) for i in range(n)])), "[spm] scores")
    ref_types = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                 else 5 if sp.is_unused(i) else 1 for i in range(n)]
    chk.eq(v4["types"], ref_types, "[spm] piece types")

    # ---- 5: failures that must be clear
    d5 = os.path.join(root, "bias")
    os.makedirs(d5)
    shutil.copy(os.path.join(d, "tokenizer.json"), d5)
    make_model(d5, cfg, seed=5, extra={"model.layers.0.self_attn.q_proj.bias": (64,)})
    p = cc.run([cc.CONVERT, d5, "-o", os.path.join(root, "bias.stb")], check=False)
    chk.check(p.returncode == 1 and "q_proj.bias" in p.stderr and "unsupported" in p.stderr,
              f"[bias] rejected naming the tensor: rc {p.returncode}, {p.stderr.strip()!r}")
    chk.check(not os.path.exists(os.path.join(root, "bias.stb")), "[bias] no output file left")

    d6 = os.path.join(root, "metaspace")
    shutil.copytree(d, d6)
    j = json.load(open(os.path.join(d6, "tokenizer.json")))
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    json.dump(j, open(os.path.join(d6, "tokenizer.json"), "w"))
    p = cc.run([cc.CONVERT, d6, "-o", os.path.join(root, "ms.stb")], check=False)
    chk.check(p.returncode == 1 and "tokenizer.json" in p.stderr and "ByteLevel" in p.stderr,
              f"[metaspace] rejected: rc {p.returncode}, {p.stderr.strip()!r}")

    d7 = os.path.join(root, "qwen")
    shutil.copytree(d, d7)
    json.dump(dict(cfg, model_type="qwen2"), open(os.path.join(d7, "config.json"), "w"))
    p = cc.run([cc.CONVERT, d7, "-o", os.path.join(root, "q.stb")], check=False)
    chk.check(p.returncode == 1 and "qwen2" in p.stderr, f"[qwen2] rejected: {p.stderr.strip()!r}")

    d8 = os.path.join(root, "badshape")
    shutil.copytree(d, d8)
    json.dump(dict(cfg, intermediate_size=128), open(os.path.join(d8, "config.json"), "w"))
    p = cc.run([cc.CONVERT, d8, "-o", os.path.join(root, "b.stb")], check=False)
    chk.check(p.returncode == 1 and "ffn_gate" in p.stderr, f"[shape mismatch] rejected: {p.stderr.strip()!r}")

chk.finish()
