#!/usr/bin/env bash
# Data-parallel GAN training over MPI on loopback: 2 processes at global batch 64 repeat the
# single-process losses of a GAN without batch norm (gan_tanh.stag), each process drawing its rows
# of the global batch's noise; the replicas stay equal; the steps' gradients travel in buckets
# during the backward, and any bucket size gives the same run; a 2-process run resumes exactly, and
# checkpoints resume across 1 and 2 processes; a `stag build --processes 2` trainer repeats `stag
# train`'s 2-process run bit for bit; the catalog DCGAN trains under mpirun, rank 0 alone writing
# the run folder and its sample grid; SIGTERM to one process stops both after one step; a batch
# that does not split is an error.
# Usage: mpi_gan.sh STAG MODELS_DIR TESTS_DIR   (needs mpirun and the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
job=
cleanup() {
  if [ -n "$job" ]; then for p in $(pgrep -P $job); do kill -9 $p; done; kill -9 $job; fi 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"
mpi=(timeout 300 mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
# The JIT compiles a program in 4 parts (modules) side by side, as on a machine of 4 cores.
export STAG_COMPILE_THREADS=4
gan=$tests/cli/gan_tanh.stag
common=(train "$gan" --batch 64 --seed 3 --threads 1 --no-save)

# Both GAN losses and D's mean probabilities within 1e-5 relative, step by step, over $3 steps.
compare() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
def steps(path):
    return [json.loads(l) for l in open(path) if '"event":"step"' in l]
a, b, n = steps(sys.argv[1]), steps(sys.argv[2]), int(sys.argv[3])
assert len(a) == len(b) == n, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for k in ("loss_d", "loss_g", "d_real", "d_fake"):
        worst = max(worst, abs(x[k] - y[k]) / abs(x[k]))
print(f"{n} steps, worst relative difference of loss_d, loss_g, d_real, d_fake: {worst:.2e}")
assert worst < 1e-5, worst
PY
}

# Parity: one process and two, 30 steps at the global batch 64, the replicas checked every 5 steps.
"$stag" "${common[@]}" --max-steps 30 --log one.jsonl --checkpoint one.ckpt >one.out 2>&1 || { cat one.out; fail "the single-process run failed"; }
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 30 --check-replicas 5 --log two.jsonl --checkpoint two.ckpt >two.out 2>&1 ||
  { cat two.out; fail "the 2-process run failed"; }
grep -q "training GAN gan_tanh on fashion-mnist: .* batch 64, .* 2 processes of 32 examples each" two.out || { cat two.out; fail "the 2-process run did not say how it splits the batch"; }
[ "$(grep -c "^training GAN" two.out)" -eq 1 ] || fail "more than rank 0 printed"
compare one.jsonl two.jsonl 30 || fail "the 2-process losses differ from the single-process ones"

# Buckets: each step's gradients start their all-reduce in buckets during the backward (split
# points in d_gradients and g_gradients, waits in d_update and g_update); the same run in buckets
# of 1 KB and in one all-reduce after each backward ends bit for bit where the default buckets do.
"$stag" ir "$gan" --step --processes 2 --bucket-mb 0.001 --stage kernels >ir.out 2>&1 || { cat ir.out; fail "stag ir --processes 2 of a GAN failed"; }
for f in d_gradients:start d_update:wait g_gradients:start g_update:wait; do
  n=$(awk -v fn="  func ${f%%:*} {" -v op="exchange ${f##*:} bucket" '/^  func /{on = ($0 == fn)} on && index($0, op){c++} END{print c+0}' ir.out)
  [ "$n" -ge 2 ] || { cat ir.out; fail "${f%%:*} has $n '${f##*:}' split points, not several"; }
done
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 30 --bucket-mb 0.001 --log small.jsonl --checkpoint small.ckpt >small.out 2>&1 ||
  { cat small.out; fail "the 2-process run in 1 KB buckets failed"; }
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 30 --bucket-mb 0 --log after.jsonl --checkpoint after.ckpt >after.out 2>&1 ||
  { cat after.out; fail "the 2-process run without buckets failed"; }
for run in small after; do
  cmp -s two.ckpt $run.ckpt || fail "the $run run ends with other parameters than the default buckets"
  cmp -s <(steps two.jsonl) <(steps $run.jsonl) || fail "the $run run's losses differ from the default buckets'"
done

# Resume: 15 steps, then on to 30 from the checkpoint, repeat the uninterrupted 30 bit for bit.
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 15 --log res.jsonl --checkpoint res.ckpt >res1.out 2>&1 || { cat res1.out; fail "the first half failed"; }
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 30 --log res.jsonl --checkpoint res.ckpt --resume res.ckpt --check-replicas 5 \
  >res2.out 2>&1 || { cat res2.out; fail "the resumed 2-process run failed"; }
grep -q "resumed from res.ckpt at epoch 1, step 15" res2.out || { cat res2.out; fail "the 2-process run did not say it resumed"; }
cmp -s two.ckpt res.ckpt || fail "the resumed 2-process run ends with other parameters"
cmp -s <(steps two.jsonl | tail -15) <(steps res.jsonl | tail -15) || fail "the resumed losses differ"
# A 2-process checkpoint resumes a single-process run, and a single-process one a 2-process run.
"$stag" "${common[@]}" --max-steps 35 --resume two.ckpt --checkpoint one35.ckpt >one35.out 2>&1 || { cat one35.out; fail "a single process could not resume a 2-process checkpoint"; }
grep -q "resumed from two.ckpt at epoch 1, step 30" one35.out || { cat one35.out; fail "the single-process run did not resume at step 30"; }
"${mpi[@]}" "$stag" "${common[@]}" --max-steps 35 --resume one.ckpt --checkpoint two35.ckpt >two35.out 2>&1 || { cat two35.out; fail "2 processes could not resume a single-process checkpoint"; }
grep -q "resumed from one.ckpt at epoch 1, step 30" two35.out || { cat two35.out; fail "the 2-process run did not resume at step 30"; }

# A trainer built for 2 processes repeats `stag train`'s 2-process run bit for bit (`stag train`
# compiled in 4 parts, the trainer in one module).
"$stag" build "$gan" --batch 64 --processes 2 -o trainer2 >build2.out 2>&1 || { cat build2.out; fail "stag build --processes 2 of a GAN failed"; }
"${mpi[@]}" ./trainer2 --seed 3 --threads 1 --no-save --max-steps 30 --log aot.jsonl --checkpoint aot.ckpt >aot.out 2>&1 ||
  { cat aot.out; fail "the built GAN trainer failed under mpirun"; }
grep -q "2 processes of 32 examples each" aot.out || { cat aot.out; fail "the built trainer did not train on 2 processes"; }
cmp -s <(steps two.jsonl) <(steps aot.jsonl) || { compare two.jsonl aot.jsonl 30; fail "the built trainer's losses differ from stag train's"; }
cmp -s two.ckpt aot.ckpt || fail "the built trainer ends with other parameters than stag train"

# The catalog DCGAN (batch norm: per-process statistics) under mpirun: rank 0 alone keeps the run
# folder, with one sample grid.
# Its running statistics differ between the processes; the parameters and Adam's state do not.
"${mpi[@]}" "$stag" train "$models/dcgan.stag" --batch 16 --seed 4 --max-steps 4 --check-replicas 2 >dcgan.out 2>&1 || { cat dcgan.out; fail "the 2-process DCGAN run failed"; }
grep -q "training GAN dcgan on fashion-mnist: .* batch 16, .* 2 processes of 8 examples each" dcgan.out || { cat dcgan.out; fail "no 2-process DCGAN line"; }
[ "$(ls runs)" = dcgan-1 ] || { ls runs; fail "not one run folder"; }
[ "$(ls runs/dcgan-1/samples)" = epoch-001.png ] || { ls -R runs; fail "not one sample grid"; }
[ "$(steps runs/dcgan-1/log.jsonl | wc -l)" -eq 4 ] || fail "the run folder's log does not have 4 steps"
[ -f runs/dcgan-1/last.safetensors ] || fail "no checkpoint"

# SIGTERM to rank 1 alone: the vote rides on the steps' all-reduce, so both processes stop after
# the same step and rank 0 writes the checkpoint. The run has no end but the signal: two processes
# starve this script's poll of the log for seconds, longer than 900 of these steps take, and a
# signal that comes after the last step stops nothing (the run is complete).
rank_pid() {
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
setsid mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none "$stag" "${common[@]}" --epochs 1000000 --log sig.jsonl \
  --checkpoint sig.ckpt >sig.out 2>sig.err &
job=$!
wait_steps sig.jsonl 10 $job || { cat sig.out sig.err; fail "the run ended before it could be stopped"; }
victim=$(rank_pid $job 1)
[ -n "$victim" ] || fail "found no rank 1 process"
kill -TERM "$victim"
for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
kill -0 $job 2>/dev/null && fail "the job still runs 30 s after SIGTERM"
wait $job && fail "the job stopped by SIGTERM exited 0"
job=
mapfile -t stops < <(grep -o "stopped by SIGTERM after step [0-9]*" sig.err | sort -u)
[ "${#stops[@]}" -eq 1 ] && [ "$(grep -c "stopped by SIGTERM" sig.err)" -eq 2 ] || { cat sig.err; fail "the processes did not both stop after one step"; }
step=${stops[0]##* }
grep -q "after step $step; checkpoint: sig.ckpt" sig.err || { cat sig.err; fail "rank 0 did not say it saved"; }
grep -q "after step $step; rank 0 saves the checkpoint" sig.err || { cat sig.err; fail "rank 1 did not say rank 0 saves"; }

# A global batch the processes cannot share is an error that ends the job.
"${mpi[@]}" "$stag" train "$gan" --batch 63 --max-steps 1 --no-save >odd.out 2>&1 && fail "batch 63 trained on 2 processes"
grep -q "the batch 63 does not split evenly over 2 processes" odd.out || { cat odd.out; fail "no error about the batch"; }
echo "mpi_gan: parity, buckets, resume, built trainer, dcgan, SIGTERM: 1 passed, 0 failed"
