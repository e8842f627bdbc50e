#!/usr/bin/env python3
"""PyTorch timing anchor for BENCHMARKS.md's "Real weights" table: the two
runs of tests/real_smollm2_bench.rs, in transformers + torch, float32, CPU,
torch.set_num_threads(2).

(a) One DPO step on SmolLM2-135M-Instruct (from the GGUF): 2 pairs, each a
    random 128-token prompt + random 128-token chosen / rejected response
    (ids uniform in [17, vocab), as the Rust bench; torch's RNG, so not the
    same ids), β = 0.5, full-model AdamW with torch's defaults (lr 1e-3,
    betas (0.9, 0.999), eps 1e-8, weight decay 0.01 — the same as candle's
    ParamsAdamW::default()). One step = frozen reference forward on the
    chosen and rejected batches (no grad), policy forward on both, response
    log-prob sums (logits at t−1 for targets t ≥ 128, lm_head applied to
    positions 0..T−2 only, as sweep's Policy::response_logprobs),
    h = (policy margin − reference margin), loss = mean(−log σ(β h)),
    backward, AdamW step. Timed cold (the first step, which is all the Rust
    bench times; loss ln 2 because policy = reference) and warm: after that
    first step as warm-up, the median of 3 more steps. Each step is also
    split into reference forward, policy forward + loss, backward, AdamW.

(b) The Bradley–Terry weak annotator on tests/fixtures/real/hh-rlhf.jsonl:
    rows parsed as sweep's HH loader does (prompt = chosen up to and
    including the last "\\n\\nAssistant:", rejected must share it and add no
    assistant turn; bad rows skipped), pairs whose prompt + longer response
    exceed 512 tokens dropped, tokenised with the GGUF's own tokenizer
    rules (ByteLevelBpe of scripts/smollm2_reference.py: the ids sweep
    uses; see scripts/smollm2_torch_reference.py for why not transformers'),
    prompt and response encoded separately and concatenated, right-padded
    with the GGUF pad id. Reward model = SmolLM2's decoder (final norm
    included, LM head dropped) + a fresh [1, 576] score head, normal(0, 0.02),
    read at each row's last real token. 3 full-model AdamW steps (lr 1e-5,
    weight decay 0) on the mean BT loss −log σ(s_w − s_l), timed from the
    first loss forward to the end of the 3rd step, cold, as in the Rust
    bench; then one annotate forward, timed. The score head's initial values
    come from torch's RNG, not sweep's, so the BT losses are not expected
    to equal sweep's.

Prints one JSON object on stdout (times in seconds, losses, torch and
transformers versions, threads, load average before and after).

Usage (the HH path is optional: without it, (a) only):
    .venv-torch/bin/python scripts/smollm2_torch_dpo_step.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf tests/fixtures/real/hh-rlhf.jsonl
"""
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_reference import ByteLevelBpe, field  # noqa: E402

# torch threads: $TORCH_THREADS (benches set it to candle's count), default 2.
THREADS = int(os.environ.get("TORCH_THREADS", "2"))
ASSISTANT_MARKER = "\n\nAssistant:"
HH_MAX_TOKENS = 512


def load_policy(gguf_path):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    return model


def gguf_tokenizer(gguf_path):
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    tok = ByteLevelBpe(
        [str(t) for t in field(reader, "tokenizer.ggml.tokens")],
        [int(t) for t in field(reader, "tokenizer.ggml.token_type")],
        [str(m) for m in field(reader, "tokenizer.ggml.merges")],
    )
    return tok, int(field(reader, "tokenizer.ggml.padding_token_id"))


def response_logprob_sums(model, ids, n_prompt):
    """Σ log π(ids[t] | ids[<t]) over t ≥ n_prompt, per row. ids: [B, T]."""
    hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]  # [B, T-1, D]
    logits = model.lm_head(hidden)  # [B, T-1, V] predicts ids[1..]
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # [B, T-1]
    mask = torch.zeros_like(logp)
    mask[:, n_prompt - 1 :] = 1.0  # target index t = column + 1 ≥ n_prompt
    return (logp * mask).sum(1)


def dpo_run(gguf_path, pairs=2, prompt_len=128, response_len=128, beta=0.5, warm_steps=3):
    policy = load_policy(gguf_path)
    reference = load_policy(gguf_path)
    reference.eval()
    reference.requires_grad_(False)
    policy.train()
    vocab = policy.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(17, vocab, (pairs, prompt_len), generator=gen)
    chosen = torch.cat([prompts, torch.randint(17, vocab, (pairs, response_len), generator=gen)], 1)
    rejected = torch.cat([prompts, torch.randint(17, vocab, (pairs, response_len), generator=gen)], 1)
    opt = torch.optim.AdamW(policy.parameters())  # lr 1e-3, wd 0.01: candle's defaults

    def step():
        """(seconds, loss, {phase: seconds}); CPU ops are synchronous, so the split is exact."""
        t0 = time.perf_counter()
        with torch.no_grad():
            ref_margin = response_logprob_sums(reference, chosen, prompt_len) - response_logprob_sums(
                reference, rejected, prompt_len
            )
        t1 = time.perf_counter()
        margin = response_logprob_sums(policy, chosen, prompt_len) - response_logprob_sums(
            policy, rejected, prompt_len
        )
        h = margin - ref_margin
        loss = -F.logsigmoid(beta * h).mean()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        split = {
            "reference_forward": t1 - t0,
            "policy_forward_loss": t2 - t1,
            "backward": t3 - t2,
            "adamw": t4 - t3,
        }
        return t4 - t0, loss.item(), split

    cold_s, cold_loss, cold_split = step()
    warm = [step() for _ in range(warm_steps)]
    return {
        "setting": f"{pairs} pairs of {prompt_len} + {response_len} tokens, beta {beta}, full-model AdamW, reference forward included",
        "trainable_params": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "attn_implementation": policy.config._attn_implementation,
        "cold_step_s": cold_s,
        "cold_loss": cold_loss,
        "cold_split_s": cold_split,
        "warm_step_s": [s for s, _, _ in warm],
        "warm_median_s": statistics.median(s for s, _, _ in warm),
        "warm_losses": [l for _, l, _ in warm],
        "warm_split_s": [split for _, _, split in warm],
        "cold_loss_is_ln2": abs(cold_loss - math.log(2)) < 1e-4,
    }


def hh_pairs(path):
    """sweep's HH-RLHF row parser with OnBadRow::Skip: (pairs, skipped)."""
    pairs, skipped = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                chosen, rejected = row["chosen"], row["rejected"]
                if not isinstance(chosen, str) or not isinstance(rejected, str):
                    raise ValueError("not a string")
                split = chosen.rindex(ASSISTANT_MARKER) + len(ASSISTANT_MARKER)
                prompt = chosen[:split]
                if not rejected.startswith(prompt):
                    raise ValueError("rejected does not share the prompt")
                rejected_response = rejected[len(prompt) :]
                if ASSISTANT_MARKER in rejected_response:
                    raise ValueError("rejected has more assistant turns")
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            pairs.append((prompt, chosen[split:], rejected_response))
    return pairs, skipped


def bt_run(gguf_path, hh_path, steps=3, lr=1e-5):
    load_start = time.perf_counter()
    decoder = load_policy(gguf_path).model  # LlamaModel: embeddings, 30 blocks, final norm
    load_s = time.perf_counter() - load_start
    tok, pad_id = gguf_tokenizer(gguf_path)
    rows, skipped = hh_pairs(hh_path)
    encoded, filtered = [], 0
    for prompt, chosen, rejected in rows:
        p, c, r = tok.encode(prompt), tok.encode(chosen), tok.encode(rejected)
        if len(p) + max(len(c), len(r)) > HH_MAX_TOKENS:
            filtered += 1
            continue
        encoded.append((p, c, r))

    def batch_of(seqs):
        seqs = [s[:HH_MAX_TOKENS] for s in seqs]
        t = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), t), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            attn[i, : len(s)] = 1
        return ids, attn, torch.tensor([len(s) - 1 for s in seqs])

    chosen_batch = batch_of([p + c for p, c, _ in encoded])
    rejected_batch = batch_of([p + r for p, _, r in encoded])
    torch.manual_seed(0)
    score = torch.nn.Linear(decoder.config.hidden_size, 1, bias=False)
    torch.nn.init.normal_(score.weight, mean=0.0, std=0.02)
    decoder.train()

    def scores(batch):
        ids, attn, last = batch
        hidden = decoder(input_ids=ids, attention_mask=attn).last_hidden_state  # [B, T, D]
        return score(hidden[torch.arange(ids.shape[0]), last]).squeeze(-1)  # [B]

    def bt_loss():
        return -F.logsigmoid(scores(chosen_batch) - scores(rejected_batch)).mean()

    params = list(decoder.parameters()) + list(score.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    train_start = time.perf_counter()
    losses = []
    for _ in range(steps):
        loss = bt_loss()
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - train_start
    annotate_start = time.perf_counter()
    with torch.no_grad():
        s_w, s_l = scores(chosen_batch), scores(rejected_batch)
    annotate_s = time.perf_counter() - annotate_start
    last = float(-F.logsigmoid(s_w - s_l).mean())
    return {
        "rows_skipped": skipped,
        "pairs_filtered_too_long": filtered,
        "pairs_kept": len(encoded),
        "sequence_lengths": [len(p) + len(c) for p, c, _ in encoded] + [len(p) + len(r) for p, _, r in encoded],
        "load_s": load_s,
        "steps": steps,
        "train_s": train_s,
        "annotate_s": annotate_s,
        "loss_first": losses[0],
        "loss_per_step": losses,
        "loss_last": last,
        "prefers_chosen": [bool(x) for x in (s_w > s_l)],
    }


def main(gguf_path, hh_path=None):
    """Without hh_path, only the DPO step (what tests/real_smollm2_bench.rs compares)."""
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "loadavg_before": load_before,
    }
    out["dpo"] = dpo_run(gguf_path)
    out["loadavg_after_dpo"] = os.getloadavg()
    if hh_path is not None:
        out["bt"] = bt_run(gguf_path, hh_path)
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
