#!/usr/bin/env bash
# Ending a training run with SIGINT or SIGTERM: it finishes the step, writes its checkpoint,
# says where, and exits 130 or 143; resumed from its run folder it ends bit for bit where the
# uninterrupted run does. A second SIGINT stops at once and leaves a checkpoint that loads.
# Usage: train_signals.sh STAG MODELS_DIR TESTS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=
cd "$tmp"
# 900 steps (one epoch has 919): the signals come past step 60 or 80, and the runs must still be going
# when a poll the load has starved sends them (at 200 steps a starved poll could find the run ended).
common=(train "$models/mlp.stag" --epochs 1 --max-steps 900 --validation 0.02 --no-test --seed 3 --threads 2)

"$stag" "${common[@]}" --run-dir a >a.out 2>&1 || { cat a.out; fail "the uninterrupted run failed"; }

# Stops run $1 with signal $2 once it is past step 60; checks its exit status $3.
interrupt() {
  "$stag" "${common[@]}" --run-dir "$1" >"$1.out" 2>"$1.err" &
  pid=$!
  wait_steps "$1/log.jsonl" 60 $pid || fail "$1: the run ended before it could be stopped"
  kill -"$2" $pid
  wait $pid
  local rc=$?
  [ $rc -eq "$3" ] || { cat "$1.out" "$1.err"; fail "$1: SIGINT/SIGTERM exit status $rc, want $3"; }
}

# Resumes run folder $1 to the end and checks the final checkpoint equals the uninterrupted one.
resume_same() {
  "$stag" "${common[@]}" --resume "$1/" >"$1.resume.out" 2>&1 || { cat "$1.resume.out"; fail "$1: the resumed run failed"; }
  grep -q "resumed from $1/last.safetensors" "$1.resume.out" || fail "$1: did not resume from the folder's last checkpoint"
  cmp -s a/last.safetensors "$1/last.safetensors" || fail "$1: the final checkpoint differs from the uninterrupted run's"
}

interrupt int INT 130
grep -Eq "stopped by SIGINT after step [0-9]+; checkpoint: int/last.safetensors; continue with --resume int" int.err ||
  { cat int.err; fail "no line saying where the checkpoint is"; }
resume_same int
# The stop saved the last logged step, so the resumed run logged every step exactly once.
cmp -s <(steps a/log.jsonl) <(steps int/log.jsonl) || fail "the losses of the interrupted and resumed run differ"

interrupt term TERM 143
grep -Eq "stopped by SIGTERM after step [0-9]+; checkpoint: term/last.safetensors" term.err || { cat term.err; fail "SIGTERM: no line saying where"; }
resume_same term

# A second SIGINT ends the run without its final checkpoint; the periodic one is intact.
common+=(--checkpoint-every 25)
"$stag" "${common[@]}" --run-dir twice >twice.out 2>twice.err &
pid=$!
wait_steps twice/log.jsonl 80 $pid || fail "twice: the run ended before it could be stopped"
kill -INT $pid; sleep 0.001; kill -INT $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 130 ] || { cat twice.err; fail "two SIGINTs: exit status $rc, want 130"; }
ls -A twice | grep -q tmp && fail "two SIGINTs left a temporary file"
how="after its final checkpoint (the second signal came late)"
grep -q "second signal: stopping now" twice.err && how="at once"
resume_same twice
cmp -s <(steps a/log.jsonl | tail -100) <(steps twice/log.jsonl | tail -100) || fail "twice: the losses after resuming differ"
echo "train_signals: SIGINT, SIGTERM, two SIGINTs (stopped $how) each resumed bit for bit; 1 passed, 0 failed"
