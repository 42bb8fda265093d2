#!/usr/bin/env bash
# Stopping a data-parallel run with a signal: Ctrl-C (SIGINT to mpirun, which sends SIGTERM to
# every process), or SIGTERM to one process alone; either way every process stops after the same
# step, rank 0 writes the checkpoint, every process exits 143 in bounded time, and the run resumed
# from the checkpoint ends bit for bit where the uninterrupted one does.
# A SIGTERM that comes after a process's last step stops nothing: the run is complete.
# Usage: mpi_signals.sh STAG MODELS_DIR TESTS_DIR END_HOLD_LIB   (needs mpirun and dataset-fashion-mnist;
# END_HOLD_LIB: tests/cli/end_hold.cpp built)
set -u
stag=$1 models=$2 tests=$3 hold=$4
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
job=
cleanup() {
  if [ -n "$job" ]; then for p in $(pgrep -P $job); do kill -9 $p; done; kill -9 $job; fi 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"
mpi=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
# Enough steps (LeNet-5 at batch 256: 2-30 ms each) that the run is still going when the signal
# comes even while the two processes starve this script's polling of the log (the MLP's 1.4 ms
# steps ended 3,000 steps before a starved poll saw step 20), and past mpirun's one second
# between Ctrl-C and its SIGTERM to the processes (600 quick steps ended within it).
steps=2000
run=(train "$models/lenet5.stag" --batch 256 --epochs 9 --validation 0.02 --no-test --seed 3 --threads 1 --no-save --max-steps $steps)

timeout 300 "${mpi[@]}" "$stag" "${run[@]}" --log ref.jsonl --checkpoint ref.ckpt >ref.out 2>&1 || { cat ref.out; fail "the uninterrupted run failed"; }

# The process of rank $2 among mpirun $1's children.
rank_pid() {
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

# Run $1: started in a session of its own (as from a terminal: mpirun's process group, each
# process in its own), stopped past step 20 by `kill -$2 TARGET` where $3 is "mpirun" or a rank.
interrupt() {
  setsid "${mpi[@]}" "$stag" "${run[@]}" --log $1.jsonl --checkpoint $1.ckpt >$1.out 2>$1.err &
  job=$!
  wait_steps $1.jsonl 20 $job || { cat $1.out $1.err; fail "$1: the run ended before it could be stopped"; }
  local target=$job
  [ "$3" = mpirun ] || target=$(rank_pid $job $3)
  [ -n "$target" ] || fail "$1: found no rank $3 process"
  kill -$2 $target
  for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  kill -0 $job 2>/dev/null && fail "$1: the job still runs 30 s after the signal"
  wait $job && fail "$1: the job exited 0"
  job=
  # Both processes stopped after the same step, the one rank 0 saved and the log ends with.
  mapfile -t stops < <(grep -o "stopped by SIGTERM after step [0-9]*" $1.err | sort -u)
  [ "${#stops[@]}" -eq 1 ] && [ "$(grep -c "stopped by SIGTERM" $1.err)" -eq 2 ] ||
    { cat $1.err; fail "$1: the processes did not both stop after one step"; }
  local step=${stops[0]##* }
  grep -q "after step $step; checkpoint: $1.ckpt; continue with --resume $1.ckpt" $1.err || { cat $1.err; fail "$1: rank 0 did not say it saved"; }
  grep -q "after step $step; rank 0 saves the checkpoint" $1.err || { cat $1.err; fail "$1: rank 1 did not say rank 0 saves"; }
  [ "$(steps $1.jsonl | tail -1 | grep -o '"step":[0-9]*')" = "\"step\":$step" ] || fail "$1: the log does not end at step $step"
  [ "$step" -lt $steps ] || fail "$1: the run ended before the signal stopped it"
  # On to the last step from the checkpoint: the uninterrupted run's parameters and losses.
  timeout 300 "${mpi[@]}" "$stag" "${run[@]}" --log $1.jsonl --checkpoint $1.ckpt --resume $1.ckpt >$1.resume 2>&1 ||
    { cat $1.resume; fail "$1: the resumed run failed"; }
  grep -q "resumed from $1.ckpt at epoch [0-9]*, step $step" $1.resume || { cat $1.resume; fail "$1: did not resume at step $step"; }
  cmp -s ref.ckpt $1.ckpt || fail "$1: the resumed run ends with other parameters than the uninterrupted one"
  cmp -s <(steps ref.jsonl) <(steps $1.jsonl) || fail "$1: the interrupted and resumed losses differ from the uninterrupted ones"
  echo "$1: stopped after step $step, resumed to $steps bit for bit"
}

interrupt ctrl_c INT mpirun
interrupt rank1 TERM 1

# SIGTERM to rank 1 past its last step's vote, while rank 0 is held where its training ends (as a
# slow last checkpoint holds it) until the signal is out: no process dies of it (then mpirun ended
# the job while rank 0 finished), rank 1 says the run is complete, rank 0 saves the last step, and
# the job exits 143.
last=30
setsid "${mpi[@]}" -x LD_PRELOAD="$hold${LD_PRELOAD:+:$LD_PRELOAD}" -x STAG_TEST_HOLD_RANK=0 -x STAG_TEST_HOLD_FILE="$tmp/release" \
  "$stag" train "$models/lenet5.stag" --batch 256 --epochs 1 --validation 0.02 --no-test --seed 3 --threads 1 --no-save \
  --max-steps $last --log late.jsonl --checkpoint late.ckpt >late.out 2>late.err &
job=$!
wait_steps late.jsonl $last $job || { cat late.out late.err; fail "late: the run ended before its last step was logged"; }
victim=$(rank_pid $job 1)
[ -n "$victim" ] || fail "late: found no rank 1 process"
kill -TERM "$victim"
touch "$tmp/release"
for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
kill -0 $job 2>/dev/null && fail "late: the job still runs 30 s after the signal"
wait $job
rc=$?
job=
[ $rc -eq 143 ] || { cat late.err; fail "late: the job exited $rc, not 143"; }
grep -q "exited on signal" late.err && { cat late.err; fail "late: a process died of the signal"; }
grep -q "stag: rank 1: SIGTERM came after the last step; the run is complete" late.err || { cat late.err; fail "late: rank 1 did not say the run is complete"; }
grep -qx "checkpoint: late.ckpt" late.out && [ -f late.ckpt ] || { cat late.out; fail "late: rank 0 did not save the last step"; }
[ "$(steps late.jsonl | tail -1 | grep -o '"step":[0-9]*')" = "\"step\":$last" ] || fail "late: the log does not end at step $last"
echo "late: SIGTERM after the last step: the run complete, no process killed"
echo "mpi_signals: Ctrl-C to mpirun, SIGTERM to one process, SIGTERM after the last step: 1 passed, 0 failed"
