#!/usr/bin/env bash
# GAN training as users run it: `stag train models/dcgan.stag` alternates the compiled
# discriminator and generator steps (one pair step); two runs with one seed end bit for bit alike,
# and so does the run of the steps compiled apart (--separate-steps); a run resumed
# from its folder ends where the uninterrupted one does, and SIGINT leaves a checkpoint; a
# standalone trainer (`stag build`) repeats the run bit for bit;
# `stag sample` draws a PNG grid; bad pairs, lone members and foreign checkpoints are errors.
# Usage: gan.sh STAG MODELS_DIR TESTS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
common=(train "$models/dcgan.stag" --seed 4 --threads 2 --batch 16)
# The JIT compiles the program in 4 parts (modules) side by side, as on a machine of 4 cores.
export STAG_COMPILE_THREADS=4

"$stag" "${common[@]}" --max-steps 6 --run-dir a --log a.jsonl >a.out 2>&1 || { cat a.out; fail "the GAN run failed"; }
grep -q "training GAN dcgan on fashion-mnist" a.out || { cat a.out; fail "no GAN training line"; }
for f in last.safetensors log.jsonl run.json samples/epoch-001.png; do [ -f a/$f ] || fail "a/$f is missing"; done
[ "$(steps a.jsonl | wc -l)" -eq 6 ] || fail "the log does not have 6 steps"
for key in loss_d loss_g d_real_accuracy d_fake_accuracy; do
  grep '"event":"step"' a.jsonl | head -1 | grep -q "\"$key\"" || fail "the step log lacks $key"
done
grep '"event":"epoch"' a.jsonl | grep -q '"examples_per_second"' || fail "the epoch log lacks examples/s"

"$stag" "${common[@]}" --max-steps 6 --run-dir b >b.out 2>&1 || { cat b.out; fail "the second run failed"; }
cmp -s a/last.safetensors b/last.safetensors || fail "two runs with one seed differ"
# One D step per G step compiles both as one pair step (G(z) made once); the steps compiled
# apart end on the same bytes.
"$stag" "${common[@]}" --max-steps 6 --run-dir p --separate-steps >p.out 2>&1 || { cat p.out; fail "the run of separate steps failed"; }
cmp -s a/last.safetensors p/last.safetensors || fail "the pair step and the separate steps end differently"

# Three steps, then resumed from the folder to six: the same checkpoint as six at once.
"$stag" "${common[@]}" --max-steps 3 --run-dir c >c.out 2>&1 || { cat c.out; fail "the short run failed"; }
"$stag" "${common[@]}" --max-steps 6 --resume c >c2.out 2>&1 || { cat c2.out; fail "the resumed run failed"; }
grep -q "resumed from c/last.safetensors" c2.out || { cat c2.out; fail "the run did not say it resumed"; }
cmp -s a/last.safetensors c/last.safetensors || fail "the resumed run ends elsewhere than the uninterrupted one"

# SIGKILL past step 2 with a checkpoint every 2 steps: resumed, the run ends where six at once do.
"$stag" "${common[@]}" --max-steps 6 --checkpoint-every 2 --run-dir k >k.out 2>&1 &
pid=$!
for _ in $(seq 3000); do
  [ -f k/log.jsonl ] && [ "$(steps k/log.jsonl | wc -l)" -ge 3 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null || fail "the run ended before it could be killed"
wait $pid 2>/dev/null
"$stag" "${common[@]}" --max-steps 6 --resume k >k2.out 2>&1 || { cat k2.out; fail "the run resumed after SIGKILL failed"; }
cmp -s a/last.safetensors k/last.safetensors || fail "the run resumed after SIGKILL ends elsewhere than the uninterrupted one"

# SIGINT: the step finishes, a checkpoint is written, exit 130.
"$stag" "${common[@]}" --run-dir d >d.out 2>&1 &
pid=$!
for _ in $(seq 3000); do
  [ -f d/log.jsonl ] && [ "$(steps d/log.jsonl | wc -l)" -ge 2 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.02
done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || { cat d.out; fail "SIGINT: exit $rc, not 130"; }
grep -q "checkpoint: d/last.safetensors" d.out || { cat d.out; fail "SIGINT: no line saying where the checkpoint is"; }
"$stag" sample "$models/dcgan.stag" --weights d --batch 16 -o interrupted.png >s0.out 2>&1 || { cat s0.out; fail "the interrupted checkpoint does not load"; }

# A standalone trainer of the pair (no LLVM) takes the same steps as `stag train`, bit for bit:
# the trainer's program is one LLVM module and the JIT's is split into parts (STAG_COMPILE_THREADS
# above, whatever the machine's cores); a kernel compiles alike in either (docs/distributed.md,
# Trainers built ahead of time).
"$stag" build "$models/dcgan.stag" --batch 16 -o trainer >t.out 2>&1 || { cat t.out; fail "stag build of the GAN failed"; }
./trainer --max-steps 6 --seed 4 --threads 2 --run-dir e --log e.jsonl >e.out 2>&1 || { cat e.out; fail "the GAN trainer failed"; }
grep -q "training GAN dcgan" e.out || { cat e.out; fail "the trainer did not train the pair"; }
cmp -s <(steps a.jsonl) <(steps e.jsonl) ||
  { diff <(steps a.jsonl) <(steps e.jsonl) | head; fail "the built trainer's losses differ from stag train's"; }
cmp -s a/last.safetensors e/last.safetensors || fail "the built trainer ends with other parameters than stag train"

# Samples: a grid of 20 images, 5 a row, at scale 1: 5 x 28 + 6 x 2 wide, 4 x 28 + 5 x 2 high.
"$stag" sample "$models/dcgan.stag" --weights a --batch 16 --count 20 --columns 5 --scale 1 -o grid.png >s.out 2>&1 ||
  { cat s.out; fail "stag sample failed"; }
python3 - grid.png <<'PY' || fail "the grid is not the expected PNG"
import struct, sys
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', data[16:24])
assert (w, h) == (5 * 28 + 6 * 2, 4 * 28 + 5 * 2), (w, h)
PY
"$stag" sample "$models/dcgan.stag" --weights a --batch 16 --count 20 --columns 5 --scale 1 -o grid2.png >/dev/null 2>&1
cmp -s grid.png grid2.png || fail "one seed drew two grids"

# Errors: exit 1 and the place.
expect_error() {  # expect_error WHAT PATTERN COMMAND...
  local what=$1 pattern=$2; shift 2
  "$@" >e.out 2>&1
  local rc=$?
  [ $rc -eq 1 ] || { cat e.out; fail "$what: exit $rc, not 1"; }
  grep -q -- "$pattern" e.out || { cat e.out; fail "$what: expected '$pattern'"; }
}
expect_error "a member trained alone" "dcgan.stag:8:1: error: 'discriminator' is the discriminator of gan 'dcgan'" \
  "$stag" train "$models/dcgan.stag" --model discriminator --max-steps 1
sed 's/input x: f32\[B, 1, 28, 28\]/input x: f32[B, 1, 32, 32]/' \
  "$models/dcgan.stag" > misfit.stag
expect_error "a pair that does not fit" "misfit.stag:8:1: error: gan 'dcgan': the generator 'generator' makes f32\[64,1,28,28\]" \
  "$stag" train misfit.stag --max-steps 1
sed 's/discriminator = discriminator/discriminator = discrimnator/' "$models/dcgan.stag" > typo.stag
expect_error "a missing model" "typo.stag:10:19: error: discriminator: the file has no model 'discrimnator' (did you mean 'discriminator'?)" \
  "$stag" train typo.stag --max-steps 1
"$stag" train "$models/mlp.stag" --max-steps 2 --run-dir mlp --no-test --validation 0.02 >m.out 2>&1 || { cat m.out; fail "the MLP run failed"; }
expect_error "another model's checkpoint" "is a checkpoint of 'mlp', not of the GAN 'dcgan'" \
  "$stag" sample "$models/dcgan.stag" --weights mlp -o x.png
# An autoencoder's sample: 10 test images above their reconstructions, 5 a row: 4 rows of 28.
"$stag" train "$models/autoencoder.stag" --max-steps 2 --run-dir ae --no-test --validation 0.01 >ae.out 2>&1 || { cat ae.out; fail "the autoencoder run failed"; }
"$stag" sample "$models/autoencoder.stag" --weights ae --count 10 --columns 5 --scale 1 -o ae.png >aes.out 2>&1 || { cat aes.out; fail "the autoencoder's sample failed"; }
python3 - ae.png <<'PY' || fail "the reconstruction grid is not the expected PNG"
import struct, sys
data = open(sys.argv[1], 'rb').read()
w, h = struct.unpack('>II', data[16:24])
assert (w, h) == (5 * 28 + 6 * 2, 4 * 28 + 5 * 2), (w, h)
PY
# The training program as stag ir shows it: sampling and the pair step (graphs, and kernels), one process's gradients and updates of a 2-process run; a member's step is refused.
"$stag" ir "$models/dcgan.stag" --step >step.ir 2>&1 || { cat step.ir; fail "stag ir --step of a GAN failed"; }
[ "$(grep -c '^graph dcgan' step.ir)" -eq 2 ] && grep -q '^graph dcgan.pair_step {' step.ir || { grep '^graph' step.ir; fail "no sampling and pair step graphs"; }
"$stag" ir "$models/dcgan.stag" --step --stage kernels | grep -q '^  func pair_step {' || fail "no pair_step kernels"
"$stag" ir "$models/dcgan.stag" --processes 2 --stage kernels >split.ir 2>&1 || { cat split.ir; fail "stag ir --processes of a GAN failed"; }
[ "$(grep -cE '^  func (d|g)_(gradients|update) \{' split.ir)" -eq 4 ] || { grep '^  func' split.ir; fail "no split GAN functions"; }
expect_error "a member's step" "'generator' is the generator of gan 'dcgan'" "$stag" ir "$models/dcgan.stag" --model generator --step
echo "gan: 6 runs alike (one a built trainer), resumed and interrupted; samples; stag ir of the steps; 5 errors; 1 passed, 0 failed"
