#!/usr/bin/env python3
"""PyTorch side of scripts/gpu-check.sh, run on the lent GPU machine, on
the random-weight HF directories `sweep model init` writes.

logprob     summed next-token log-probs of texts (one a line), PyTorch f32 on
            the GPU, as JSON lines with the fields of `sweep model logprob
            --json` that gpu-check compares: a third opinion.
bench       the DPO training step `sweep model bench` times (8 pairs x 256
            tokens by default): bf16 autocast, f32 master weights, AdamW,
            frozen reference forward; prints step time, training tokens/s and
            MFU as JSON.
"""
import argparse
import json
import os
import sys
import time

import torch

# Dense bf16 tensor-core peak (no sparsity), TFLOP/s: H100 SXM and H200 share it.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}


def load(model_dir, dtype=torch.float32):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    return model.cuda()


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
        print(json.dumps({"sum_logprob": picked.sum().item(), "predicted_tokens": picked.numel()}))


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
        "impl": f"pytorch {torch.__version__}", "device": name, "dtype": "bf16 autocast",
        "pairs": pairs, "tokens_per_seq": seq,
        "step_s": step_s, "tokens_per_s": tokens / step_s, "tflops": flops / step_s / 1e12,
        "mfu": (flops / step_s / 1e12 / peak) if peak else None, "loss": loss.item(),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
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
    {"logprob": logprob, "bench": bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
