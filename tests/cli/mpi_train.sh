#!/usr/bin/env bash
# Data-parallel training over MPI on loopback: 2 processes at global batch 64 repeat the
# single-process batch-64 losses of LeNet-5 (tanh and average pooling, lenet5_tanh.stag: a ReLU
# network's runs part at the first pre-activation within rounding of zero), also with gradient
# clipping by the global norm, and
# of the MLP, whose dropout draws the single-process masks; so does a `stag build --processes 2`
# trainer, bit for bit as `stag train`; gradients in buckets overlapped with the backward give the
# losses of one all-reduce after it, bit for bit; the replicas stay equal and a mismatch is caught; a killed or a stopped process
# ends the job with an error in bounded time; a 2-process run resumes exactly, and its
# checkpoint resumes a single-process run; 3 processes repeat one's LeNet-5 losses too.
# Usage: mpi_train.sh STAG MODELS_DIR   (needs mpirun and the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
cd "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
mpi=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)

# Losses within 1e-5 relative, step by step, of `parity MODEL`'s two runs; every record says how
# many processes made it.
compare() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def steps(path):
    recs = [json.loads(l) for l in open(path)]
    return recs, [r["loss"] for r in recs if r["event"] == "step"]
one, a = steps(sys.argv[1])
two, b = steps(sys.argv[2])
assert len(a) == len(b) == 50, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[1]}: 50 steps, worst relative loss difference {worst:.2e}")
assert worst < 1e-5, worst
assert all(r["ranks"] == 2 for r in two) and all(r["ranks"] == 1 for r in one)
PY
}
# MODEL trained 50 steps at batch 64 by one process and by two (checking the replicas every 5);
# `parity NAME MODEL_FILE FLAGS...` adds flags.
parity() {
  local m=$1 run=(train "$2" --batch 64 --epochs 1 --validation 0.02 --no-test --seed 3 --threads 1 --no-save --max-steps 50 "${@:3}")
  "$stag" "${run[@]}" --log $m-one.jsonl --checkpoint $m-one.ckpt >$m-one.out 2>&1 || { cat $m-one.out; fail "$m: the single-process run failed"; }
  timeout 300 "${mpi[@]}" "$stag" "${run[@]}" --check-replicas 5 --log $m-two.jsonl --checkpoint $m-two.ckpt \
    >$m-two.out 2>&1 || { cat $m-two.out; fail "$m: the 2-process run failed"; }
  grep -q "batch 64, .* 2 processes of 32 examples each" $m-two.out || { cat $m-two.out; fail "$m: the 2-process run did not say how it splits the batch"; }
  [ "$(grep -c "^training $(basename "$2" .stag)" $m-two.out)" -eq 1 ] || fail "$m: more than rank 0 printed"
  compare $m-one.jsonl $m-two.jsonl || fail "$m: the 2-process losses differ from the single-process ones"
}
parity lenet5 "$here/lenet5_tanh.stag"
# Dropout: each process draws its rows' share of the global batch's masks.
parity mlp "$models/mlp.stag"
# Buckets: the gradients all-reduced in 4 buckets, each started during the backward (the default,
# 1 MB for the first bucket and 25 MB after, makes two), or in one piece after the backward
# (--bucket-mb 0), give the same losses and parameters bit for bit; the split points show in the
# kernel IR.
for b in 0 0.3; do
  timeout 300 "${mpi[@]}" "$stag" train "$models/mlp.stag" --batch 64 --epochs 1 --validation 0.02 --no-test --seed 3 --threads 1 \
    --no-save --max-steps 50 --bucket-mb $b --log bucket$b.jsonl --checkpoint bucket$b.ckpt >bucket$b.out 2>&1 || { cat bucket$b.out; fail "--bucket-mb $b failed"; }
  cmp -s <(grep '"event":"step"' bucket$b.jsonl) <(grep '"event":"step"' mlp-two.jsonl) || fail "--bucket-mb $b changed the losses"
  cmp -s bucket$b.ckpt mlp-two.ckpt || fail "--bucket-mb $b changed the parameters"
done
grep -q "gradients all-reduced in 4 buckets during the backward" bucket0.3.out || { cat bucket0.3.out; fail "no 4 buckets"; }
grep -q "gradients all-reduced in" bucket0.out && fail "--bucket-mb 0 still made buckets"
"$stag" ir "$models/mlp.stag" --processes 2 --bucket-mb 0.3 --stage kernels >buckets.ir || fail "stag ir --processes failed"
[ "$(grep -c '^    exchange start bucket' buckets.ir)" -eq 4 ] && [ "$(grep -c '^    exchange wait bucket' buckets.ir)" -eq 4 ] ||
  { grep exchange buckets.ir; fail "the kernel IR does not show 4 buckets' split points"; }
grep -q "exchange start bucket 3 (%grad.fc1.weight)  # 1605632 bytes, all-reduce started after kernel" buckets.ir || fail "the last bucket is not fc1.weight's"
# A trainer built for 2 processes repeats `stag train`'s 2-process run bit for bit; it refuses
# another number of processes.
"$stag" build "$models/mlp.stag" --batch 64 --processes 2 -o trainer2 >build2.out 2>&1 || { cat build2.out; fail "stag build --processes 2 failed"; }
timeout 300 "${mpi[@]}" ./trainer2 --epochs 1 --validation 0.02 --no-test --seed 3 --threads 1 --no-save --max-steps 50 \
  --log aot.jsonl --checkpoint aot.ckpt >aot.out 2>&1 || { cat aot.out; fail "the built trainer failed under mpirun"; }
cmp -s <(grep '"event":"step"' aot.jsonl) <(grep '"event":"step"' mlp-two.jsonl) || fail "the built trainer's losses differ from stag train's"
cmp -s aot.ckpt mlp-two.ckpt || fail "the built trainer's checkpoint differs from stag train's"
timeout 60 mpirun -np 3 --oversubscribe --allow-run-as-root --bind-to none ./trainer2 --max-steps 1 >np3.out 2>&1 && fail "3 processes ran a 2-process trainer"
grep -q "built for 2 processes, and mpirun started 3: build it with \`stag build --processes 3\`" np3.out || { cat np3.out; fail "no error about the process count"; }
# Clipping by the global norm: the update sees the averaged gradients (a low threshold clips every step).
parity clipped "$here/lenet5_tanh.stag" --grad-clip 0.05
cp lenet5-two.jsonl two.jsonl
cp lenet5-two.ckpt two.ckpt
unseeded=(train "$here/lenet5_tanh.stag" --batch 64 --epochs 1 --validation 0.02 --no-test --threads 1 --no-save)
common=("${unseeded[@]}" --seed 3)

# Replicas that differ (each process initialised from another seed) are caught at the first check.
timeout 300 mpirun --oversubscribe --allow-run-as-root --bind-to none \
  -np 1 "$stag" "${unseeded[@]}" --max-steps 20 --check-replicas 4 --seed 1 : \
  -np 1 "$stag" "${unseeded[@]}" --max-steps 20 --check-replicas 4 --seed 2 >bad.out 2>&1 && fail "differing replicas went unnoticed"
grep -q "step 4: the replicas differ (--check-replicas)" bad.out || { cat bad.out; fail "no replica error at step 4"; }

# The process of the given rank among mpirun's children.
rank_pid() {
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# Starts a long 2-process run logging to $1; waits for 20 logged steps; sets `job` and `victim` (rank 1).
start_long() {
  "${mpi[@]}" "$stag" "${common[@]}" --max-steps 100000 --log "$1" --dist-timeout "$2" >"$1.out" 2>&1 &
  job=$!
  pids+=("$job")
  for _ in $(seq 600); do
    n=$(grep -c '"event":"step"' "$1" 2>/dev/null)
    [ "${n:-0}" -ge 20 ] && break
    kill -0 $job 2>/dev/null || { cat "$1.out"; fail "the long run ended early"; }
    sleep 0.1
  done
  victim=$(rank_pid $job 1)
  [ -n "$victim" ] || fail "found no rank 1 process"
  pids+=("$victim")
}
# Waits at most $2 seconds for the job to end; it must end with an error.
expect_failure() {
  for _ in $(seq $(($2 * 10))); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  kill -0 $job 2>/dev/null && fail "$1: the job still runs after $2 s"
  wait $job && fail "$1: the job exited 0"
  return 0
}

start_long kill.jsonl 300
kill -9 "$victim"
expect_failure "a killed rank" 60
grep -qi "rank 1\|signal 9\|killed" kill.jsonl.out || { cat kill.jsonl.out; fail "no error named the killed process"; }

start_long stop.jsonl 5
kill -STOP "$victim"
expect_failure "a stopped rank" 60
grep -q "rank 0: no answer from the other processes" stop.jsonl.out || { cat stop.jsonl.out; fail "no error said rank 0 waited in vain"; }

# Resume: 30 steps, then on to 50 from the checkpoint, repeat the uninterrupted 50 bit for bit.
timeout 300 "${mpi[@]}" "$stag" "${common[@]}" --max-steps 30 --log res.jsonl --checkpoint res.ckpt >res1.out 2>&1 || { cat res1.out; fail "the first half failed"; }
timeout 300 "${mpi[@]}" "$stag" "${common[@]}" --max-steps 50 --log res.jsonl --checkpoint res.ckpt --resume res.ckpt --check-replicas 5 \
  >res2.out 2>&1 || { cat res2.out; fail "the resumed 2-process run failed"; }
grep -q "resumed from" res2.out || fail "the 2-process run did not say it resumed"
cmp -s two.ckpt res.ckpt || fail "the resumed 2-process run ends with other parameters"
steps() { grep '"event":"step"' "$1" | tail -20; }
cmp -s <(steps two.jsonl) <(steps res.jsonl) || fail "the resumed losses differ"
# A 2-process checkpoint resumes a single-process run.
"$stag" "${common[@]}" --max-steps 60 --resume res.ckpt --checkpoint one60.ckpt >one60.out 2>&1 || { cat one60.out; fail "a single process could not resume a 2-process checkpoint"; }
grep -q "resumed from .* step 50" one60.out || { cat one60.out; fail "the single-process run did not resume at step 50"; }

# 3 processes run the ring's reduce-scatter and all-gather over 3 blocks (2 swap or run 2 steps):
# LeNet-5 at global batch 48 in 10 KB buckets, several rings under way at once, repeats one
# process's 20 losses within 1e-5 relative, the replicas equal.
three=(train "$here/lenet5_tanh.stag" --batch 48 --epochs 1 --validation 0.02 --no-test --seed 3 --threads 1 --no-save --max-steps 20)
"$stag" "${three[@]}" --log three-one.jsonl >three-one.out 2>&1 || { cat three-one.out; fail "the batch-48 run failed"; }
timeout 300 mpirun -np 3 --oversubscribe --allow-run-as-root --bind-to none "$stag" "${three[@]}" --bucket-mb 0.01 --check-replicas 5 \
  --log three.jsonl >three.out 2>&1 || { cat three.out; fail "the 3-process run failed"; }
grep -q "batch 48, .* 3 processes of 16 examples each" three.out || { cat three.out; fail "the 3-process run did not say how it splits the batch"; }
python3 - three-one.jsonl three.jsonl <<'PY' || fail "the 3-process losses differ from the single-process ones"
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p) if '"event":"step"' in l] for p in sys.argv[1:])
assert len(a) == len(b) == 20, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"3 processes: 20 steps, worst relative loss difference {worst:.2e}")
assert worst < 1e-5, worst
PY
echo "mpi_train: parity (2 and 3 processes), built trainer, replicas, killed and stopped ranks, resume: 1 passed, 0 failed"
