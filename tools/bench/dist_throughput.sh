#!/usr/bin/env bash
# Data-parallel throughput on one machine (issue 21's target): 2 processes x 1 thread against
# 1 process x 2 threads, the same global batch, interleaved runs, from the epoch record's
# `seconds` (training only: no compile, no validation). Then stag's all-reduce against a plain
# MPI ping-pong (build/tools/stag_allreduce_bench).
# Usage: tools/bench/dist_throughput.sh [STAG] [STEPS] [ROUNDS] [MODELS...]   (from the repository root)
set -eu
stag=${1:-build/tools/stag} steps=${2:-100} rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
if [ $# -gt 0 ]; then models=("$@"); else models=(gpt resnet); fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpi=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)

# Examples a second of one run: $1 log, $2 global batch.
rate() { python3 -c "import json,sys; e=[json.loads(l) for l in open('$1') if '\"epoch\"' in l][-1]; print(f'{$steps*$2/e[\"seconds\"]:.1f}')"; }
batch_of() { grep -m1 -oP '^\s*batch\s+\K\d+' "models/$1.stag"; }

echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $steps steps a run"
for m in "${models[@]}"; do
  b=$(batch_of "$m")
  base=(train "models/$m.stag" --epochs 1 --validation 0.01 --no-test --no-save --seed 1)
  run=("${base[@]}" --max-steps "$steps")
  # Compile once each way first (the JIT cache then serves the timed runs).
  "$stag" "${base[@]}" --max-steps 2 --threads 2 >/dev/null 2>&1
  "${mpi[@]}" "$stag" "${base[@]}" --max-steps 2 --threads 1 >/dev/null 2>&1
  one=() two=()
  for r in $(seq "$rounds"); do
    "$stag" "${run[@]}" --threads 2 --log "$tmp/one.jsonl" >/dev/null 2>&1
    one+=("$(rate "$tmp/one.jsonl" "$b")")
    "${mpi[@]}" "$stag" "${run[@]}" --threads 1 --log "$tmp/two.jsonl" >/dev/null 2>&1
    two+=("$(rate "$tmp/two.jsonl" "$b")")
    rm -f "$tmp"/*.jsonl
  done
  python3 - "$m" "$b" "${one[*]}" "${two[*]}" <<'PY'
import sys, statistics as st
m, b, one, two = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
print(f"{m} (global batch {b}): 1 process x 2 threads {one} ex/s, 2 processes x 1 thread {two} ex/s; "
      f"ratio of medians {st.median(two) / st.median(one):.2f}, of bests {max(two) / max(one):.2f}")
PY
done
bench=$(dirname "$stag")/stag_allreduce_bench
[ -x "$bench" ] && "${mpi[@]}" "$bench" 64
