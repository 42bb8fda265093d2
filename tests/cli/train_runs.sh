#!/usr/bin/env bash
# Run folders: every way a run ends leaves a checkpoint (after --max-steps, at an epoch end,
# after early stopping: the best weights), with best.safetensors, log.jsonl and run.json
# beside it; --resume FOLDER continues bit for bit in that folder; `stag eval` and `stag
# predict` take a folder; --no-save keeps none; a full disk leaves the previous checkpoint.
# Usage: train_runs.sh STAG MODELS_DIR TESTS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
mnt=
trap '[ -n "$mnt" ] && umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp"
common=(train "$models/mlp.stag" --validation 0.02 --no-test --seed 3 --threads 2)

# --max-steps: the default folder runs/mlp-1, and --checkpoint as an extra copy.
"$stag" "${common[@]}" --epochs 1 --max-steps 400 --checkpoint extra.safetensors >a.out 2>&1 || { cat a.out; fail "the run failed"; }
a=runs/mlp-1
for f in last.safetensors best.safetensors log.jsonl run.json; do [ -f $a/$f ] || fail "$a/$f is missing"; done
grep -q "run folder $a: last.safetensors (step 400), best.safetensors (epoch 1, val_loss" a.out || { cat a.out; fail "no line saying where the run is"; }
cmp -s extra.safetensors $a/last.safetensors || fail "--checkpoint is not the last checkpoint"
[ "$(steps $a/log.jsonl | wc -l)" -eq 400 ] || fail "log.jsonl does not have 400 steps"
hash=$(sha256sum "$models/mlp.stag" | cut -d' ' -f1)
grep -q "\"model_hash\": \"sha256:$hash\"" $a/run.json || { cat $a/run.json; fail "run.json lacks the model's sha256"; }
grep -q '"--max-steps",' $a/run.json && grep -q '"start_time"' $a/run.json && grep -q '"stag_version"' $a/run.json ||
  fail "run.json lacks the command line, start time or version"

# Resumed from its folder after --max-steps: the same tensors and losses as the longer run.
"$stag" "${common[@]}" --epochs 1 --max-steps 250 >b.out 2>&1 || { cat b.out; fail "the short run failed"; }
b=runs/mlp-2
[ -f $b/last.safetensors ] || fail "the second run did not get runs/mlp-2"
"$stag" "${common[@]}" --epochs 1 --max-steps 400 --resume $b/ >b2.out 2>&1 || { cat b2.out; fail "the resumed run failed"; }
[ -d runs/mlp-3 ] && fail "the resumed run wrote a new folder"
same_tensors $a/last.safetensors $b/last.safetensors || fail "after resuming from max-steps the tensors differ"
cmp -s <(steps $a/log.jsonl) <(steps $b/log.jsonl) || fail "after resuming from max-steps the losses differ"
grep -q '"resumed"' $b/run.json || fail "run.json does not record the resumed start"

# eval and predict take a folder: its best checkpoint.
"$stag" eval "$models/mlp.stag" --weights $a/ >e.out 2>&1 || { cat e.out; fail "stag eval of a folder failed"; }
grep -q "weights: $a/best.safetensors" e.out && grep -q "10000 examples" e.out || { cat e.out; fail "stag eval: not the best checkpoint"; }
"$stag" predict "$models/mlp.stag" --weights $b --out-dir p >p.out 2>&1 || { cat p.out; fail "stag predict of a folder failed"; }
grep -q "weights: $b/best.safetensors" p.out && [ -f p/predictions.npy ] || { cat p.out; fail "stag predict: not the best checkpoint"; }

# --no-save: no folder.
"$stag" "${common[@]}" --epochs 1 --max-steps 5 --no-save >n.out 2>&1 || { cat n.out; fail "--no-save failed"; }
[ "$(ls runs | wc -l)" -eq 2 ] || fail "--no-save made a folder"

# The tabular model on 240 CSV rows (every 7th label wrong): epochs in milliseconds.
awk 'BEGIN { print "a,b,c,d,label"; for (i = 0; i < 240; i++) { c = i % 3; n = (i * 37 % 11) / 20;
     printf "%.3f,%.3f,%.3f,%.3f,%d\n", (c==0)*3+n, (c==1)*3-n, (c==2)*3+n/2, n, (i % 7 == 0) ? (c + 1) % 3 : c } }' > data.csv
tab=(train "$tests/cli/tabular.stag" --data data.csv --validation 0.25 --threads 2)

# An epoch end: resumed from it, a longer run ends where the uninterrupted one does.
"$stag" "${tab[@]}" --epochs 2 --run-dir t1 >t1.out 2>&1 || { cat t1.out; fail "the two-epoch run failed"; }
"$stag" "${tab[@]}" --epochs 4 --run-dir t2 >t2.out 2>&1 || { cat t2.out; fail "the four-epoch run failed"; }
"$stag" "${tab[@]}" --epochs 4 --resume t1 >t3.out 2>&1 || { cat t3.out; fail "resuming at an epoch end failed"; }
grep -q "resumed from t1/last.safetensors at epoch 3" t3.out || { cat t3.out; fail "did not resume at epoch 3"; }
cmp -s t1/last.safetensors t2/last.safetensors || fail "resumed at an epoch end, the final checkpoint differs"
cmp -s <(steps t1/log.jsonl) <(steps t2/log.jsonl) || fail "resumed at an epoch end, the losses differ"

# Early stopping: last.safetensors holds the restored best weights, as best.safetensors does.
"$stag" "${tab[@]}" --epochs 200 --lr 0.5 --early-stopping 2 --run-dir es \
    >es.out 2>&1 || { cat es.out; fail "the early-stopping run failed"; }
grep -q "early stop: best epoch" es.out && grep -q "restored the weights of epoch" es.out || { cat es.out; fail "no early stop"; }
same_tensors es/best.safetensors es/last.safetensors || fail "after early stopping last.safetensors is not the best weights"

# A full disk: the write fails, the run says so, and the previous checkpoint still loads.
size=$(stat -c %s $a/last.safetensors)
mkdir full
disk="skipped (cannot mount a tmpfs here)"
if mount -t tmpfs -o size=$((size * 3 / 2)) tmpfs full 2>/dev/null; then
  mnt=$tmp/full
  "$stag" "${common[@]}" --epochs 1 --max-steps 40 --checkpoint-every 20 --run-dir full/run >f.out 2>&1 && { cat f.out; fail "a full disk went unnoticed"; }
  grep -q "No space left on device (the previous checkpoint there is intact)" f.out || { cat f.out; fail "the full disk was not reported"; }
  ls -A full/run | grep -q tmp && fail "a temporary file was left on the full disk"
  "$stag" eval "$models/mlp.stag" --weights full/run >f2.out 2>&1 || { cat f2.out; fail "the checkpoint before the full disk does not load"; }
  head -c 4096 full/run/last.safetensors | grep -aq '"step":"20"' || fail "the checkpoint before the full disk is not step 20's"
  disk="the previous checkpoint intact"
fi
echo "train_runs: max-steps, epoch end, early stop, resume from folders, eval/predict of folders; full disk: $disk; 1 passed, 0 failed"
