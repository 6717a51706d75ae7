#!/usr/bin/env python3
"""Regenerate perplexity.golden.json, the reference bllm-perplexity is tested
against (test_perplexity.py, README.md).

Run with the heavy reference venv (torch + transformers + accelerate + gguf):
    /root/.cache/bllm/ref-venv/bin/python tests/perplexity/make_ppl_golden.py

The models are built exactly as tests/model/make_golden.py builds them
(transformers LlamaForCausalLM, eager attention; stories260K from the llama2.c
checkpoint, SmolLM2 through transformers' GGUF loader) and run in float64 on
the float32 weights, so the numbers are the exact answer for those weights;
the float32 result is stored beside it as the yardstick for float32 noise.

The protocols are written here from their reference code, not from bllm:
  gptq      IST-DASLab/gptq llama.py llama_eval (same in BiLLM
            eval_ppl_utils.py): nsamples = numel // seqlen; per window
            CrossEntropyLoss(logits[:-1], window[1:]) * seqlen; ppl =
            exp(sum / (nsamples * seqlen)).
  llamacpp  llama.cpp tools/perplexity/perplexity.cpp perplexity(): n_chunk =
            len // n_ctx; each chunk's first token replaced by BOS when the
            vocab adds BOS; positions first = n_ctx // 2 .. n_ctx - 2 scored
            against the next token; ppl = exp(mean); error
            sqrt((E[x^2] - E[x]^2) / (count - 1)) * ppl.
  KL        KL(base || model) = sum p_base (log p_base - log p_model) over the
            gptq-scored positions, base = stories260K float32 weights, model =
            the same weights rounded to bfloat16 (what `bllm-convert --type
            bf16` stores: every matrix, norms stay float32); top-1 agreement.

The token ids go into the golden file, so the C side scores identical tokens
(--tokens); the tests also score the text itself to check the text path.
"""
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "model"))
import make_golden as mg  # noqa: E402  (model builders, shared inputs)

STORIES_CHARS = 8000
STORIES_GPTQ_CTX = 256
STORIES_LLAMACPP_CTX = 128
SMOL_CTX = 512
SMOL_WINDOWS = 4
NEAR_TIE = 1e-3  # top-1/top-2 logit gap below which float32 noise may flip an argmax


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


@torch.no_grad()
def window_logits(model, window, dtype):
    m = model.to(dtype)
    out = m(input_ids=torch.tensor([window], dtype=torch.long), use_cache=False).logits[0]
    model.to(torch.float32)
    return out.double()


def summarize(nll):
    """nll: 1-D float64 tensor of per-position NLLs."""
    n = nll.numel()
    mean = nll.mean().item()
    var = (nll * nll).mean().item() - mean * mean
    se = math.sqrt(var / (n - 1))
    return dict(tokens=n, nll_mean=mean, nll_stderr=se, ppl=math.exp(mean), ppl_stderr=math.exp(mean) * se)


def gptq_eval(model, ids, seqlen, dtype):
    """GPTQ llama_eval, with the model run per window instead of layer by layer."""
    testenc = torch.tensor([ids], dtype=torch.long)
    nsamples = testenc.numel() // seqlen
    nlls, per_token = [], []
    for i in range(nsamples):
        batch = testenc[:, i * seqlen:(i + 1) * seqlen]
        lm_logits = window_logits(model, batch[0].tolist(), dtype).unsqueeze(0)
        shift_logits = lm_logits[:, :-1, :].contiguous()
        shift_labels = batch[:, 1:]
        loss = torch.nn.CrossEntropyLoss()(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.reshape(-1))
        nlls.append(loss * seqlen)
        per_token.append(torch.nn.functional.cross_entropy(
            shift_logits.view(-1, shift_logits.size(-1)), shift_labels.reshape(-1), reduction="none"))
    ppl = torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item()
    s = summarize(torch.cat(per_token))
    assert abs(s["ppl"] / ppl - 1) < 1e-12, (s["ppl"], ppl)  # equal-size windows: same mean
    s["windows"] = nsamples
    return s


def llamacpp_eval(model, ids, n_ctx, bos, dtype):
    """llama.cpp perplexity(): the non-strided path."""
    n_chunk = len(ids) // n_ctx
    first = n_ctx // 2
    nll = []
    for i in range(n_chunk):
        start = i * n_ctx
        window = list(ids[start:start + n_ctx])
        if bos is not None:
            window[0] = bos
        logits = window_logits(model, window, dtype)
        logp = torch.log_softmax(logits, dim=-1)
        for j in range(first, n_ctx - 1):
            nll.append(-logp[j, ids[start + j + 1]].item())
    s = summarize(torch.tensor(nll, dtype=torch.float64))
    s["windows"] = n_chunk
    assert s["tokens"] == n_chunk * (n_ctx - 1 - first)
    return s


def kl_eval(base, model, ids, seqlen, dtype):
    """KL(base || model) and top-1 agreement on the gptq-scored positions."""
    n = len(ids) // seqlen
    kls, same, near = [], 0, 0
    for i in range(n):
        w = ids[i * seqlen:(i + 1) * seqlen]
        lb = torch.log_softmax(window_logits(base, w, dtype)[:-1], -1)
        lm = torch.log_softmax(window_logits(model, w, dtype)[:-1], -1)
        kls.append((lb.exp() * (lb - lm)).sum(-1))
        same += (lb.argmax(-1) == lm.argmax(-1)).sum().item()
        for lp in (lb, lm):
            top2 = lp.topk(2, dim=-1).values
            near += ((top2[:, 0] - top2[:, 1]) < NEAR_TIE).sum().item()
    kl = torch.cat(kls)
    cnt = kl.numel()
    mean = kl.mean().item()
    var = (kl * kl).mean().item() - mean * mean
    return dict(tokens=cnt, windows=n, kl_mean=mean, kl_stderr=math.sqrt(var / (cnt - 1)),
                top1_agreement=same / cnt, near_ties=near)


def bf16_copy(model):
    import copy
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:  # the matrices bllm-convert --type bf16 rounds
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return m


def case(name, protocol, ctx, inp, ref64, ref32):
    d = dict(name=name, input=inp, protocol=protocol, ctx=ctx, expected=ref64,
             float32_ppl=ref32["ppl"], float32_rel_diff=ref32["ppl"] / ref64["ppl"] - 1)
    print(f"{name}: {protocol} c={ctx} windows={ref64['windows']} tokens={ref64['tokens']} "
          f"ppl={ref64['ppl']:.6f} +/- {ref64['ppl_stderr']:.4f} (float32 {ref32['ppl']:.6f}, "
          f"rel {d['float32_rel_diff']:+.2e})")
    return d


def main():
    for p in (mg.STORIES_BIN, mg.STORIES_TOK, mg.STORIES_TEXT, mg.WIKI, mg.SMOL_GGUF):
        if not p.exists():
            sys.exit(f"missing input {p} (set BLLM_SHARED / BLLM_CACHE)")
    t0 = time.time()
    cases, inputs = [], {}

    # ---- stories260K: BOS-adding SPM-style llama2.c tokenizer
    cfg, t = mg.read_llama2c(mg.STORIES_BIN)
    model = mg.stories_model(cfg, t)
    tk = mg.Llama2cTokenizer(mg.STORIES_TOK, cfg["vocab"])
    # bytes, not read_text(): the file has a few CRLFs, which universal newlines would rewrite
    text = mg.STORIES_TEXT.read_bytes().decode("utf-8")[:STORIES_CHARS].encode("utf-8")
    sids = tk.encode(text, bos=True)
    print(f"stories260K: {len(text)} bytes -> {len(sids)} tokens (BOS first) in {time.time() - t0:.1f} s")
    inputs["stories260K"] = dict(
        model="stories260K", text_file=f"stories260K/{mg.STORIES_TEXT.name}", text_bytes=len(text),
        text_sha256=sha256_bytes(text), text_tokens=len(sids), bos=1,
        how=f"first {STORIES_CHARS} characters, llama2.c encode (BOS first)", tokens=sids)
    cases.append(case("stories260K gptq", "gptq", STORIES_GPTQ_CTX, "stories260K",
                      gptq_eval(model, sids, STORIES_GPTQ_CTX, torch.float64),
                      gptq_eval(model, sids, STORIES_GPTQ_CTX, torch.float32)))
    cases.append(case("stories260K llamacpp", "llamacpp", STORIES_LLAMACPP_CTX, "stories260K",
                      llamacpp_eval(model, sids, STORIES_LLAMACPP_CTX, 1, torch.float64),
                      llamacpp_eval(model, sids, STORIES_LLAMACPP_CTX, 1, torch.float32)))
    mb = bf16_copy(model)
    kl64 = kl_eval(model, mb, sids, STORIES_GPTQ_CTX, torch.float64)
    kl32 = kl_eval(model, mb, sids, STORIES_GPTQ_CTX, torch.float32)
    print(f"stories260K KL(f32 || bf16) c={STORIES_GPTQ_CTX}: {kl64['kl_mean']:.6e} +/- {kl64['kl_stderr']:.1e} "
          f"(float32 {kl32['kl_mean']:.6e}), top-1 agreement {kl64['top1_agreement'] * 100:.3f}% "
          f"(float32 {kl32['top1_agreement'] * 100:.3f}%), near ties {kl64['near_ties']}")
    cases.append(dict(name="stories260K KL f32||bf16", input="stories260K", protocol="gptq",
                      ctx=STORIES_GPTQ_CTX, kl_base="f32", kl_model="bf16", expected=kl64,
                      float32_kl_mean=kl32["kl_mean"], float32_top1_agreement=kl32["top1_agreement"]))
    del model, mb

    # ---- SmolLM2: byte-level BPE, no BOS
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(mg.SMOL_GGUF.parent), gguf_file=mg.SMOL_GGUF.name)
    wiki = mg.WIKI.read_bytes()
    all_ids = tok(wiki.decode("utf-8"), add_special_tokens=True)["input_ids"]
    assert all_ids[0] != 1, "SmolLM2 should not get a BOS"
    keep = SMOL_WINDOWS * SMOL_CTX + SMOL_CTX // 2  # a partial tail the tool must drop
    ids = all_ids[:keep]
    print(f"smollm2: wiki.test.raw -> {len(all_ids)} tokens, keeping {keep}")
    m1 = mg.smol_model_transformers()
    inputs["smollm2"] = dict(
        model="SmolLM2-135M-Instruct", text_file=mg.WIKI.name, text_bytes=len(wiki),
        text_sha256=sha256_bytes(wiki), text_tokens=len(all_ids), bos=None,
        how=f"whole file, HF tokenizer from the GGUF (no BOS), first {keep} ids kept", tokens=ids)
    cases.append(case("smollm2 gptq", "gptq", SMOL_CTX, "smollm2",
                      gptq_eval(m1, ids, SMOL_CTX, torch.float64),
                      gptq_eval(m1, ids, SMOL_CTX, torch.float32)))
    cases.append(case("smollm2 llamacpp", "llamacpp", SMOL_CTX, "smollm2",
                      llamacpp_eval(m1, ids, SMOL_CTX, None, torch.float64),
                      llamacpp_eval(m1, ids, SMOL_CTX, None, torch.float32)))

    note = dict(generator="tests/perplexity/make_ppl_golden.py",
                reference="transformers LlamaForCausalLM eager, float64 on the float32 weights",
                stories260K_sha256=mg.sha256(mg.STORIES_BIN), smollm2_sha256=mg.sha256(mg.SMOL_GGUF),
                torch=torch.__version__)
    out = HERE / "perplexity.golden.json"
    # Indented, except the token lists, which stay on one line each.
    toks = {k: v.pop("tokens") for k, v in inputs.items()}
    for k, v in inputs.items():
        v["tokens"] = f"@TOKENS:{k}@"
    text = json.dumps(dict(note=note, inputs=inputs, cases=cases), indent=1)
    for k, v in toks.items():
        text = text.replace(f'"@TOKENS:{k}@"', json.dumps(v, separators=(",", ":")))
    assert json.loads(text)["inputs"]["stories260K"]["tokens"] == toks["stories260K"]
    out.write_text(text + "\n")
    print(f"wrote {out.name} ({out.stat().st_size} bytes) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
