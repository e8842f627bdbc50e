#!/usr/bin/env bash
# One dependency hop on the running Slurm, the two ways an executor can
# chain jobs (BENCHMARKS.md, "Slurm executor"):
#   (a) ahead: every job submitted at once, each with
#       --dependency=afterok:<previous> --kill-on-invalid-dep=yes;
#   (b) when ready: each job submitted once the previous one left squeue,
#       polled every POLL seconds (what `sweep run --executor slurm` does).
# Usage: scripts/slurm-chain-bench.sh [HOPS=10] [POLL=0.2]
set -euo pipefail
HOPS="${1:-10}"
POLL="${2:-0.2}"
now() { date +%s.%N; }
gone() { ! squeue -h -j "$1" -t PD,CF,R,CG 2>/dev/null | grep -q .; }
wait_gone() { until gone "$1"; do sleep "$POLL"; done; }

t0=$(now)
prev=""
for _ in $(seq "$HOPS"); do
  dep=()
  [[ -n $prev ]] && dep=(--dependency="afterok:$prev" --kill-on-invalid-dep=yes)
  prev=$(sbatch --parsable -J chain-ahead -o /dev/null "${dep[@]}" --wrap true)
done
wait_gone "$prev"
t1=$(now)
for _ in $(seq "$HOPS"); do
  id=$(sbatch --parsable -J chain-ready -o /dev/null --wrap true)
  wait_gone "$id"
done
t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$HOPS" -v p="$POLL" 'BEGIN {
  printf "ahead (afterok):            %.2f s per hop\n", (b - a) / n
  printf "when ready (poll %s s):   %.2f s per hop\n", p, (c - b) / n
}'
