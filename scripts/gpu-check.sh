#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (H100/H200: NVIDIA driver and
# PyTorch's CUDA wheels, no Rust toolchain, no network). Budget: ≤ 8 minutes.
#
# Here (build machine):  scripts/build-cuda.sh build   # stages .gpu/{sweep,cwpo-tests}.gz
# There (device tool):   run(command="scripts/gpu-check.sh", carry=[".gpu"], timeout_s=600)
# Dry run on any CPU:    GPU_CHECK_DEVICE=cpu GPU_CHECK_TIME_SCALE=8 SWEEP_BIN=target/debug/sweep scripts/gpu-check.sh
#   (same steps with cpu in place of cuda:0; the GPU-only and PyTorch parts are
#   skipped when there is no GPU or no torch, and say so)
#
# Steps, each under its own time limit and independent (a failing step is
# logged and the next one runs); outputs in $OUT (summary.md first):
#   1. environment: GPU, driver, torch, library paths, the binary's CUDA libraries
#   2. device-parity: candle CPU vs GPU log-probs and one DPO step (the carried
#      test binary's ignored `device::gpu_parity` tests)
#   3. tiny-parity, smollm2-parity: `sweep model init` writes a seeded random
#      model (tiny; SmolLM2-135M's real shapes), `sweep model logprob` scores 8
#      texts of 64 words on cpu/f32, DEVICE/f32 and DEVICE/bf16, PyTorch f32 on
#      the GPU as a third opinion. Tolerances, max over texts of
#      |Δ Σ log-prob| / predicted tokens:
#        f32 vs f32: 1e-4 (summation order only: cuBLAS vs the CPU gemm, TF32 off)
#        f32 vs bf16: 2e-2 (bf16 keeps 8 mantissa bits; measured on the CPU
#        here: 2.3e-4 tiny, 1.4e-3 SmolLM2-shaped; docs/cuda.md)
#   4. throughput: `sweep model bench` (SmolLM2-135M shapes, 8 pairs x 256
#      tokens, full fine-tune DPO step) in f32 and bf16, and the same step in
#      PyTorch (scripts/gpu_anchor.py bench: bf16 autocast, f32 AdamW): tokens/s,
#      MFU against 989 TFLOP/s (H100 SXM / H200 dense bf16), and sweep/PyTorch
#   5. table1: one dataset and one seed of tiny Table 1
#      (scripts/gpu-check/table1-one.toml) on the CPU and on DEVICE, wall times
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
device=${GPU_CHECK_DEVICE:-cuda:0}
out="${OUT:-$root/gpu-check-out}"
work=$(mktemp -d)
mkdir -p "$out"
log="$out/gpu-check.log"
summary="$out/summary.md"
python=${PYTHON:-python3}
exec > >(tee -a "$log") 2>&1

# The binaries: carried gzipped in .gpu/ (scripts/build-cuda.sh build), or given.
unpack() { # unpack NAME → path of an executable copy
  if [ -f "$root/.gpu/$1.gz" ]; then
    gunzip -c "$root/.gpu/$1.gz" >"$work/$1" && chmod +x "$work/$1" && echo "$work/$1"
  else
    echo "$root/.gpu/$1"
  fi
}
bin="${SWEEP_BIN:-$(unpack sweep)}"
tests="${SWEEP_TESTS:-$(unpack cwpo-tests)}"
on_gpu=false
[[ $device == cuda* ]] && on_gpu=true
has_torch=false
$on_gpu && "$python" -c 'import torch, transformers; assert torch.cuda.is_available()' 2>/dev/null && has_torch=true
# CPU reference runs use every core (sweep defaults to one thread per stage).
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$(nproc)}

status=0
# Step limits are sized for the GPU machine (16 cores, one H100/H200); a dry run
# on a small CPU machine scales them up.
scale=${GPU_CHECK_TIME_SCALE:-1}
step() { # step NAME SECONDS FUNCTION [ARGS...]: run one step under a time limit, record it
  local name=$1 limit=$(($2 * scale)) start rc
  shift 2
  echo "=== $name (limit ${limit} s)"
  start=$(date +%s)
  timeout "$limit" bash -c '"$@"' step "$@"
  rc=$?
  echo "--- $name: rc=$rc in $(($(date +%s) - start)) s"
  printf -- '- %s: %s (%s s)\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED rc=$rc")" \
    "$(($(date +%s) - start))" >>"$summary"
  [ $rc -eq 0 ] || status=1
}
skip() { # skip NAME WHY
  echo "=== $1: skipped ($2)"
  printf -- '- %s: skipped (%s)\n' "$1" "$2" >>"$summary"
}
export root device bin tests out work python on_gpu has_torch summary

# --- 1. Where the binary finds libcuda and cuBLAS ---------------------------
# libcuda.so.1 comes with the driver (/usr/local/nvidia/lib64 on these
# machines, or the system loader path); libcudart/libcublas/libcublasLt/
# libcurand/libnvrtc come from PyTorch's nvidia-* wheels (site-packages/
# nvidia/cu13/lib). The binary was linked against stubs with these SONAMEs.
library_path() {
  local dirs
  dirs=$("$python" - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
libs = set()
for r in roots:
    libs.update(os.path.dirname(p) for p in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True))
print(":".join(sorted(libs)))
PY
)
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/libcuda.so.1" ] && dirs="$d:$dirs"
  done
  echo "$dirs"
}
$on_gpu && export LD_LIBRARY_PATH="$(library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

environment() {
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "device $device; cores $(nproc); RAYON_NUM_THREADS=$RAYON_NUM_THREADS; torch on GPU: $has_torch"
  [ -x "$bin" ] || { echo "no binary at $bin: run scripts/build-cuda.sh build here first and carry .gpu"; return 1; }
  "$bin" --version
  $on_gpu || return 0
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$python" -c 'import torch; print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc|not found'
  ! ldd "$bin" | grep -q 'not found'
}
{
  echo "# gpu-check $(date -u +%F) on $device"
  echo
  $on_gpu && echo "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
  echo
} >"$summary"
export -f environment
step environment 60 environment

# --- 2. candle-level parity (src/device.rs, gpu_parity) ---------------------
if $on_gpu; then
  step device-parity 60 "$tests" device::gpu_parity --ignored --nocapture --test-threads=1
else
  skip device-parity "needs a GPU"
fi

# --- 3. model parity through `sweep model logprob` --------------------------
compare() { # compare A.jsonl B.jsonl TOLERANCE_PER_TOKEN LABEL
  "$python" - "$@" <<'PY'
import json, sys
a, b, tol, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
ra = [json.loads(l) for l in open(a) if l.strip()]
rb = [json.loads(l) for l in open(b) if l.strip()]
assert len(ra) == len(rb) > 0, f"{label}: {len(ra)} vs {len(rb)} results"
worst = max(abs(x["sum_logprob"] - y["sum_logprob"]) / max(x["predicted_tokens"], 1) for x, y in zip(ra, rb))
print(f"{label}: max |delta logprob| per token = {worst:.3e} (tolerance {tol:g})")
with open(sys.argv[5], "a") as s:
    s.write(f"  - {label}: {worst:.3e} per token (tolerance {tol:g})\n")
sys.exit(0 if worst <= tol else 1)
PY
}
texts() { # texts VOCAB: 8 seeded texts of 64 words w3..w{VOCAB-1}, one a line
  "$python" -c '
import random, sys
rng = random.Random(0)
for _ in range(8):
    print(" ".join(f"w{rng.randrange(3, int(sys.argv[1]))}" for _ in range(64)))' "$1"
}
model_parity() { # model_parity PRESET VOCAB
  local preset=$1 dir="$work/$1" args=() text rc=0
  [ -d "$dir" ] || "$bin" model init --preset "$preset" --seed 0 --out "$dir" || return 1
  texts "$2" >"$work/$preset-texts.txt"
  while read -r text; do args+=(--text "$text"); done <"$work/$preset-texts.txt"
  "$bin" model logprob --model "$dir" "${args[@]}" --device cpu --dtype f32 --json >"$out/$preset-cpu-f32.jsonl" || return 1
  "$bin" model logprob --model "$dir" "${args[@]}" --device "$device" --dtype f32 --json >"$work/$preset-f32.jsonl" || return 1
  "$bin" model logprob --model "$dir" "${args[@]}" --device "$device" --dtype bf16 --json >"$work/$preset-bf16.jsonl" || return 1
  compare "$out/$preset-cpu-f32.jsonl" "$work/$preset-f32.jsonl" 1e-4 "$preset cpu f32 vs $device f32" "$summary" || rc=1
  compare "$out/$preset-cpu-f32.jsonl" "$work/$preset-bf16.jsonl" 2e-2 "$preset cpu f32 vs $device bf16" "$summary" || rc=1
  if $has_torch; then
    "$python" "$root/scripts/gpu_anchor.py" logprob --model "$dir" --texts "$work/$preset-texts.txt" >"$work/$preset-torch.jsonl" || return 1
    compare "$out/$preset-cpu-f32.jsonl" "$work/$preset-torch.jsonl" 1e-4 "$preset sweep cpu f32 vs pytorch cuda f32" "$summary" || rc=1
  fi
  return $rc
}
export -f compare texts model_parity
step tiny-parity 60 model_parity tiny 512
step smollm2-parity 120 model_parity smollm2-135m 49152

# --- 4. throughput: sweep vs PyTorch, same machine, same shapes -------------
throughput() {
  local dir="$work/smollm2-135m" size=(--pairs 8 --tokens 256 --steps 10 --warmup 3) peak=()
  $on_gpu && peak=(--peak-tflops 989) || size=(--pairs 1 --tokens 32 --steps 1 --warmup 1)
  [ -d "$dir" ] || "$bin" model init --preset smollm2-135m --seed 0 --out "$dir" || return 1
  for dtype in f32 bf16; do
    "$bin" model bench --model "$dir" "${size[@]}" --device "$device" --dtype "$dtype" "${peak[@]}" --json |
      tee -a "$out/throughput.jsonl"
    [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  done
  if $has_torch; then
    "$python" "$root/scripts/gpu_anchor.py" bench --model "$dir" --pairs 8 --tokens 256 --steps 10 --warmup 3 |
      tee -a "$out/throughput.jsonl"
    [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  fi
  "$python" - "$out/throughput.jsonl" "$summary" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
torch = next((r for r in rows if r.get("impl", "").startswith("pytorch")), None)
with open(sys.argv[2], "a") as s:
    for r in rows:
        name = r.get("impl") or f"sweep {r['dtype']}"
        mfu = f", MFU {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else ""
        ratio = f", {r['tokens_per_s'] / torch['tokens_per_s']:.2f}x PyTorch" if torch else ""
        s.write(f"  - {name} on {r['device']}: {r['step_s']:.4f} s/step, {r['tokens_per_s']:.0f} tokens/s{mfu}{ratio}\n")
PY
}
export -f throughput
step throughput 150 throughput

# --- 5. tiny Table 1, one dataset and one seed, on the CPU and on DEVICE -----
table1() { # table1 DEVICE JOBS
  local results="$work/results-${1/:/}" start
  start=$(date +%s)
  "$bin" run "$root/scripts/gpu-check/table1-one.toml" --results "$results" --device "$1" --jobs "$2" || return 1
  echo "  - tiny Table 1 (hh-rlhf, seed 0) on $1, --jobs $2: $(($(date +%s) - start)) s" >>"$summary"
  find "$results" -name '*.csv' -path '*table1*' -exec sh -c 'echo "## $1 ($2)"; cat "$1"' _ {} "$1" \; |
    tee -a "$out/table1.txt"
}
export -f table1
step table1-cpu 120 table1 cpu "$(nproc)"
if $on_gpu; then
  step table1-gpu 150 table1 "$device" 4
else
  skip table1-gpu "no GPU: the cpu run above is the same manifest"
fi

echo
cat "$summary"
rm -rf "$work"
exit $status
