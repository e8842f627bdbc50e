#!/usr/bin/env python3
"""PyTorch counterpart of benches/train_step.rs, which runs it and prints the
ratio: one training step (forward + backward + AdamW) of the same tiny
Llama-style decoder, float32 on the CPU.

Model: transformers' LlamaForCausalLM, vocab 512, d 128, 4 layers, 4 heads
(MHA, head dim 32), SwiGLU 344, RMSNorm eps 1e-6, RoPE theta 1e4, tied
embeddings, no biases (857,216 parameters, as the Rust bench prints).
Batch: 16 random sequences of 64 tokens (ids uniform in [3, 512), torch's RNG),
the first 16 the prompt; loss = mean negative log-likelihood of the 48
response tokens, as `Policy::response_logprobs` in the bench. AdamW with
lr 1e-3 and torch's defaults otherwise (betas 0.9/0.999, eps 1e-8, weight
decay 0.01: candle-nn's ParamsAdamW::default()). 4 batches cycled; 3 warm-up
steps, then STEPS timed steps.

Usage: tiny_torch_train_step.py --steps S   (threads: $TORCH_THREADS, default 1)
Prints one JSON object: tokens_per_s, ms_per_step, forward/backward/optimizer
ms per step, final loss, versions, threads.
"""
import argparse
import json
import os
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

BATCH, SEQ, PROMPT = 16, 64, 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512, hidden_size=128, intermediate_size=344,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
        head_dim=32, max_position_embeddings=128, rope_theta=10_000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = LlamaForCausalLM(config).float().train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [torch.randint(3, 512, (BATCH, SEQ)) for _ in range(4)]
    warmup = 3
    fwd = bwd = upd = 0.0
    loss_value = None
    for i in range(warmup + args.steps):
        ids = batches[i % len(batches)]
        t0 = time.perf_counter()
        logits = model(input_ids=ids).logits[:, PROMPT - 1:SEQ - 1, :]
        logp = torch.log_softmax(logits, dim=-1)
        token_logp = logp.gather(-1, ids[:, PROMPT:].unsqueeze(-1)).squeeze(-1)
        loss = -token_logp.mean()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= warmup:
            fwd, bwd, upd = fwd + t1 - t0, bwd + t2 - t1, upd + t3 - t2
        loss_value = loss.item()
    total = fwd + bwd + upd
    print(json.dumps({
        "tokens_per_s": args.steps * BATCH * SEQ / total,
        "ms_per_step": 1e3 * total / args.steps,
        "forward_ms": 1e3 * fwd / args.steps,
        "backward_ms": 1e3 * bwd / args.steps,
        "optimizer_ms": 1e3 * upd / args.steps,
        "final_loss": loss_value,
        "params": params,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
