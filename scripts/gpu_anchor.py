#!/usr/bin/env python3
"""PyTorch side of scripts/gpu-check.sh, run on the lent GPU machine.

make-model  writes a seeded, randomly initialised Llama-family model as an HF
            directory (config.json, model.safetensors, tokenizer.json) that
            both `sweep` and PyTorch load: `tiny` or `smollm2-135m` (the real
            SmolLM2-135M shapes; no network there, so no real weights).
make-texts  seeded texts in that model's word vocabulary, one a line.
logprob     summed next-token log-probs of texts, PyTorch f32, as JSON lines
            (the contract of `sweep model logprob --json`): a third opinion.
bench       one DPO training step (8 pairs x 256 tokens by default): bf16
            autocast, f32 master weights, AdamW, frozen reference forward;
            prints step time, training tokens/s and MFU as JSON.
"""
import argparse
import json
import os
import sys
import time

import torch

PRESETS = {
    # SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M).
    "smollm2-135m": dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
        max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "tiny": dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
        max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
}

# Dense bf16 tensor-core peak (no sparsity), TFLOP/s: H100 SXM and H200 share it.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}


def load(model_dir, dtype=torch.float32):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    return model.cuda()


def make_model(args):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(**PRESETS[args.preset], bos_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(config)
    model.save_pretrained(args.out, safe_serialization=True)
    # Word-level vocabulary: "<s>", "</s>", "<unk>", then w3 .. w{V-1}; texts are
    # written in these words, so every text tokenises the same in both programs.
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({f"w{i}": i for i in range(3, config.vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(os.path.join(args.out, "tokenizer.json"))


def make_texts(args):
    """Seeded texts in the model's word vocabulary, one a line."""
    g = torch.Generator().manual_seed(args.seed)
    vocab = PRESETS[args.preset]["vocab_size"]
    for _ in range(args.count):
        words = torch.randint(3, vocab, (args.words,), generator=g)
        print(" ".join(f"w{int(w)}" for w in words))


@torch.no_grad()
def logprob(args):
    """Same contract as `sweep model logprob --json`: per text, the sum of
    log p(t_i | t_<i) over i >= 1 and the number of predicted tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    model = load(args.model).eval()
    for text in open(args.texts).read().splitlines():
        ids = torch.tensor([tok.encode(text).ids], device="cuda")  # [1, T]
        logp = torch.log_softmax(model(ids).logits.float(), -1)[0, :-1]  # [T-1, V]
        picked = logp.gather(-1, ids[0, 1:, None])[:, 0]  # [T-1]
        print(json.dumps({"logprob": picked.sum().item(), "tokens": picked.numel()}))


def train_flops_per_step(config, tokens, seq):
    """Matmul FLOPs of one DPO step: policy forward+backward (3x forward) and
    reference forward (1x); attention scores counted in full (no causal halving)."""
    d, f, L, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    kv = d * config.num_key_value_heads // config.num_attention_heads
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * f  # q,o + k,v + gate,up,down
    forward_per_token = 2 * (L * per_layer + d * V) + 2 * 2 * L * seq * d
    return 4 * forward_per_token * tokens


def bench(args):
    model = load(args.model).train()
    reference = load(args.model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    g = torch.Generator(device="cuda").manual_seed(0)
    vocab, pairs, seq = model.config.vocab_size, args.pairs, args.tokens
    ids = torch.randint(3, vocab, (2 * pairs, seq), device="cuda", generator=g)
    mask = torch.zeros(2 * pairs, seq - 1, device="cuda")
    mask[:, seq // 2:] = 1.0  # second half is the response

    def seq_logp(m):
        logits = m(ids).logits[:, :-1].float()
        picked = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        return (picked * mask).sum(-1)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                ref = seq_logp(reference)
            pol = seq_logp(model)
        margin = (pol - ref).view(2, pairs)
        loss = -torch.nn.functional.logsigmoid(0.1 * (margin[0] - margin[1])).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / args.steps
    tokens = 2 * pairs * seq
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    flops = train_flops_per_step(model.config, tokens, seq)
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}", "device": name, "pairs": pairs, "tokens_per_seq": seq,
        "step_s": step_s, "tokens_per_s": tokens / step_s, "tflops": flops / step_s / 1e12,
        "mfu": (flops / step_s / 1e12 / peak) if peak else None, "loss": loss.item(),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("--preset", choices=PRESETS, required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True)
    t = sub.add_parser("make-texts")
    t.add_argument("--preset", choices=PRESETS, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--count", type=int, default=8)
    t.add_argument("--words", type=int, default=64)
    lp = sub.add_parser("logprob")
    lp.add_argument("--model", required=True)
    lp.add_argument("--texts", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--pairs", type=int, default=8)
    b.add_argument("--tokens", type=int, default=256)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    {"make-model": make_model, "make-texts": make_texts, "logprob": logprob, "bench": bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
