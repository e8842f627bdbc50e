#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (H100/H200: NVIDIA driver and
# PyTorch's CUDA wheels, no Rust toolchain, no network). Budget: ~8 minutes.
#
# Here (build machine):  scripts/build-cuda.sh build   # stages .gpu/{sweep,cwpo-tests}
# There (device tool):   run(command="scripts/gpu-check.sh", carry=[".gpu"], timeout_s=600)
#
# Steps, each independent (a failing step is logged and the next one runs):
#   1. environment: GPU, driver, library paths, `ldd` of the carried binary
#   2. device parity: candle CPU vs cuda:0 log-probs and one DPO step (test binary)
#   3. model parity: `sweep model logprob` on cpu vs cuda:0 (f32 and bf16) for a
#      tiny model and a SmolLM2-135M-shaped model, PyTorch as third opinion
#   4. throughput: `sweep model dpo-bench` (8 pairs x 256 tokens) and the same
#      step in PyTorch (scripts/gpu_anchor.py bench), tokens/s and MFU
#   5. the tiny Table 1 DAG (one dataset, one seed) end to end on cuda:0
# Everything lands in $OUT (gpu-check.log, summary.md, *.jsonl).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="${SWEEP_BIN:-$root/.gpu/sweep}"
tests="${SWEEP_TESTS:-$root/.gpu/cwpo-tests}"
out="${OUT:-$root/gpu-check-out}"
work=$(mktemp -d)
mkdir -p "$out"
log="$out/gpu-check.log"
summary="$out/summary.md"
python=${PYTHON:-python3}
exec > >(tee -a "$log") 2>&1

status=0
step() { # step NAME SECONDS FUNCTION [ARGS...]: run one step under a time limit, record it
  local name=$1 limit=$2 start rc
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
export root bin tests out work python

# --- 1. Where the binary finds libcuda and cuBLAS ---------------------------
# libcuda.so.1 comes with the driver (/usr/local/nvidia/lib64 on these
# machines, or the system loader path); libcudart/libcublas/libcublasLt/
# libcurand/libnvrtc come from PyTorch's nvidia-* wheels (site-packages/
# nvidia/cu13/lib). The binary was linked against stubs with these SONAMEs.
library_path() {
  local dirs
  dirs=$("$python" - <<'PY'
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
export LD_LIBRARY_PATH="$(library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

environment() {
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$python" -c 'import torch; print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  [ -x "$bin" ] || { echo "no binary at $bin: run scripts/build-cuda.sh build here first and carry .gpu"; return 1; }
  ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc|not found'
  ! ldd "$bin" | grep -q 'not found'
}
{
  echo "# gpu-check $(date -u +%F)"
  echo
  echo "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
  echo
} >"$summary"
export -f environment
step environment 60 environment

# --- 2. candle-level parity (src/device.rs, gpu_parity) ---------------------
step device-parity 60 "$tests" device::gpu_parity --ignored --nocapture --test-threads=1

# --- 3. model parity through `sweep model logprob` --------------------------
# Tolerances, per predicted token (sums over 63 tokens are compared):
#   f32 vs f32: 1e-4   summation order only (cuBLAS vs CPU gemm; TF32 is off)
#   cpu f32 vs gpu bf16: 0.05   bf16 keeps 8 mantissa bits; 30 layers of
#      rounding move a log-prob by a few 1e-2 (PyTorch bf16 shows the same)
compare() { # compare A.jsonl B.jsonl TOLERANCE_PER_TOKEN LABEL
  "$python" - "$@" <<'PY'
import json, sys
a, b, tol, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
ra = [json.loads(l) for l in open(a) if l.strip()]
rb = [json.loads(l) for l in open(b) if l.strip()]
assert len(ra) == len(rb) > 0, f"{label}: {len(ra)} vs {len(rb)} results"
worst = max(abs(x["logprob"] - y["logprob"]) / max(x["tokens"], 1) for x, y in zip(ra, rb))
print(f"{label}: max |delta logprob| per token = {worst:.3e} (tolerance {tol:g})")
sys.exit(0 if worst <= tol else 1)
PY
}
model_parity() { # model_parity PRESET
  local preset=$1 dir="$work/$1" texts="$work/$1-texts.jsonl"
  "$python" "$root/scripts/gpu_anchor.py" make-model --preset "$preset" --seed 0 --out "$dir" || return 1
  "$python" "$root/scripts/gpu_anchor.py" make-texts --preset "$preset" --seed 0 --count 8 >"$texts" || return 1
  local args=()
  while read -r text; do args+=(--text "$text"); done <"$texts"
  "$bin" model logprob --model "$dir" "${args[@]}" --device cpu --dtype f32 --json >"$out/$preset-cpu.jsonl" &&
    "$bin" model logprob --model "$dir" "${args[@]}" --device cuda:0 --dtype f32 --json >"$work/$preset-gpu-f32.jsonl" &&
    "$bin" model logprob --model "$dir" "${args[@]}" --device cuda:0 --dtype bf16 --json >"$work/$preset-gpu-bf16.jsonl" &&
    "$python" "$root/scripts/gpu_anchor.py" logprob --model "$dir" --texts "$texts" >"$work/$preset-torch.jsonl" || return 1
  compare "$out/$preset-cpu.jsonl" "$work/$preset-gpu-f32.jsonl" 1e-4 "$preset cpu f32 vs cuda f32"
  local a=$?
  compare "$out/$preset-cpu.jsonl" "$work/$preset-gpu-bf16.jsonl" 0.05 "$preset cpu f32 vs cuda bf16"
  local b=$?
  compare "$out/$preset-cpu.jsonl" "$work/$preset-torch.jsonl" 1e-4 "$preset candle cpu vs pytorch f32"
  local c=$?
  [ $a -eq 0 ] && [ $b -eq 0 ] && [ $c -eq 0 ]
}
dpo_parity() { # one DPO step from the same weights: the losses agree
  local dir="$work/smollm2-135m"
  [ -d "$dir" ] || "$python" "$root/scripts/gpu_anchor.py" make-model --preset smollm2-135m --seed 0 --out "$dir"
  "$bin" model dpo-bench --model "$dir" --pairs 2 --tokens 64 --steps 1 --warmup 0 --device cpu --dtype f32 --json >"$work/dpo-cpu.json" &&
    "$bin" model dpo-bench --model "$dir" --pairs 2 --tokens 64 --steps 1 --warmup 0 --device cuda:0 --dtype f32 --json >"$work/dpo-gpu.json" || return 1
  "$python" - "$work/dpo-cpu.json" "$work/dpo-gpu.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["loss"][0] for p in sys.argv[1:])
print(f"DPO step loss cpu {a:.6f} cuda {b:.6f} |delta| {abs(a - b):.2e} (tolerance 1e-4)")
sys.exit(0 if abs(a - b) <= 1e-4 else 1)
PY
}
export -f compare model_parity dpo_parity
step tiny-parity 60 model_parity tiny
step smollm2-parity 90 model_parity smollm2-135m
step dpo-step-parity 60 dpo_parity

# --- 4. throughput: sweep vs PyTorch, same machine, same shapes -------------
throughput() {
  local dir="$work/smollm2-135m"
  [ -d "$dir" ] || "$python" "$root/scripts/gpu_anchor.py" make-model --preset smollm2-135m --seed 0 --out "$dir"
  "$python" "$root/scripts/gpu_anchor.py" bench --model "$dir" --pairs 8 --tokens 256 | tee -a "$out/throughput.jsonl"
  local torch_rc=${PIPESTATUS[0]}
  "$bin" model dpo-bench --model "$dir" --pairs 8 --tokens 256 --steps 10 --warmup 3 --device cuda:0 --json | tee -a "$out/throughput.jsonl"
  [ "${PIPESTATUS[0]}" -eq 0 ] && [ "$torch_rc" -eq 0 ]
}
export -f throughput
step throughput 90 throughput

# --- 5. the tiny Table 1 DAG on cuda:0 ---------------------------------------
table1() {
  cd "$root" || return 1
  # shellcheck disable=SC2086 # TABLE1_ARGS is a list of flags
  "$bin" run experiments/table1.toml --device cuda:0 ${TABLE1_ARGS:---dataset helpful --seed 0} &&
    find results -path '*table1*' -name '*.csv' -exec sh -c 'echo "## $1"; cat "$1"' _ {} \; | tee "$out/table1.txt"
}
export -f table1
step table1-cuda 150 table1

echo
cat "$summary"
rm -rf "$work"
exit $status
