#!/usr/bin/env bash
# Every picture stag writes, opened as a person opens it: `stag ir --dot` at each stage rendered by
# Graphviz's dot (every node drawn once, one line a field, no literal escape sequences, kernels as
# clusters with their share of a profile); the Chrome trace of --profile-out loaded as JSON; the
# evaluation pictures (the area under each drawn ROC curve is the printed AUC, the heatmap's counts
# the printed matrix); and every SVG (rendered by rsvg-convert) and PNG (stag plot, sample grids, a
# GAN's epoch samples) read with libpng: a picture of the stated size, not blank.
# Usage: pictures.sh STAG MODELS_DIR PNG_INFO   (needs dataset-fashion-mnist and python3; uses
# graphviz and librsvg2-bin where installed, and says what it skipped without them)
set -u
stag=$1 models=$2 png_info=$3
check="python3 $(dirname "$0")/pictures.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
run() { "$stag" "$@" >out.txt 2>&1 || { cat out.txt; fail "stag $* failed"; }; }
skipped=()
have_dot=$(command -v dot || true)
have_rsvg=$(command -v rsvg-convert || true)
[ -n "$have_dot" ] || skipped+=("Graphviz renderings (dot is not installed; apt-get install graphviz)")
[ -n "$have_rsvg" ] || skipped+=("SVG renderings (rsvg-convert is not installed; apt-get install librsvg2-bin)")

# png_is FILE WIDTH HEIGHT: a PNG libpng reads, of that size, with something drawn on it.
png_is() {
  local info
  info=$("$png_info" "$1") || fail "$1 is not a PNG libpng reads"
  read -r w h channels ink colours <<<"$info"
  [ "$w $h" = "$2 $3" ] || fail "$1 is ${w}x$h, expected ${2}x$3"
  awk -v ink="$ink" -v c="$colours" 'BEGIN { exit !(ink > 0.01 && c > 1) }' || fail "$1 is blank (ink $ink, $colours colours)"
}

# svg_renders FILE: rsvg-convert draws it at the width and height it states, not blank.
svg_renders() {
  [ -n "$have_rsvg" ] || return 0
  rsvg-convert --background-color=white "$1" -o "$1.png" || fail "rsvg-convert cannot draw $1"
  local size
  size=$(python3 -c 'import re,sys; m = re.search(r"<svg[^>]* width=\"([\d.]+)(?:pt)?\" height=\"([\d.]+)(?:pt)?\"", open(sys.argv[1]).read()); print(round(float(m[1])), round(float(m[2])))' "$1")
  png_is "$1.png" $size
}

# dot_renders NAME IR_TEXT [KERNEL_TEXT FUNCTION]: NAME.dot drawn by Graphviz shows the IR.
dot_renders() {
  [ -n "$have_dot" ] || return 0
  local name=$1
  shift
  dot -Tsvg "$name.dot" -o "$name.svg" 2>dot.err || { cat dot.err; fail "dot cannot render $name.dot"; }
  [ -s dot.err ] && { cat dot.err; fail "dot warned about $name.dot"; }
  $check dot "$name.svg" "$@" || fail "$name.dot is not drawn as the IR reads"
  [ -n "$have_rsvg" ] && { rsvg-convert "$name.svg" -o "$name.png" || fail "rsvg-convert cannot draw $name.svg"; "$png_info" "$name.png" >/dev/null; }
}

# --dot at every graph stage, of inference and of the whole training step.
for stage in graph autodiff optimized; do
  run ir "$models/lenet5.stag" --stage $stage --dot -o $stage.dot
  run ir "$models/lenet5.stag" --stage $stage -o $stage.txt
  dot_renders $stage $stage.txt
done
run ir "$models/lenet5.stag" --stage kernels --dot -o kernels.dot
run ir "$models/lenet5.stag" --stage kernels -o kernels.txt
dot_renders kernels optimized.txt kernels.txt forward
run ir "$models/mlp.stag" --step -o step.txt
run ir "$models/mlp.stag" --step --dot -o step.dot
dot_renders step step.txt
run ir "$models/mlp.stag" --step --stage optimized -o step_opt.txt
run ir "$models/mlp.stag" --step --stage kernels -o step_kernels.txt
run ir "$models/mlp.stag" --step --stage kernels --dot -o step_kernels.dot
dot_renders step_kernels step_opt.txt step_kernels.txt train_step

# A large graph, GPT's train step, by its layers (every picture drawn by dot within a minute, at
# most 5,000 pt a side), and one layer in full, a picture a phase.
dot_svg() {  # dot_svg NAME: NAME.dot as NAME.svg, within a minute and without a warning
  [ -n "$have_dot" ] || return 1
  timeout 60 dot -Tsvg "$1.dot" -o "$1.svg" 2>dot.err || { cat dot.err; fail "dot cannot render $1.dot within a minute"; }
  [ -s dot.err ] && { cat dot.err; fail "dot warned about $1.dot"; }
  return 0
}
run ir "$models/gpt.stag" --step -o gpt_step.txt
run ir "$models/gpt.stag" --step --dot -o gpt_layers.dot
grep -q "drawn by its layers (wte, wpe, h.0, h.1, h.2, h.3, ln_f, lm_head, drop, optimizer)" out.txt || { cat out.txt; fail "--dot did not say it draws GPT's step by its layers"; }
dot_svg gpt_layers && { $check layers gpt_layers.svg gpt_step.txt 5000 || fail "GPT's train step is not drawn by its layers"; }
run ir "$models/gpt.stag" --step --stage optimized -o gpt_opt.txt
run ir "$models/gpt.stag" --step --stage kernels -o gpt_kernels.txt
run ir "$models/gpt.stag" --step --stage kernels --dot -o gpt_kernel_layers.dot
dot_svg gpt_kernel_layers && { $check layers gpt_kernel_layers.svg gpt_opt.txt 5000 gpt_kernels.txt train_step || fail "GPT's kernels are not drawn by its layers"; }
sed 's/ in "[^"]*")/)/' gpt_step.txt >gpt_unscoped.ir  # IR without layers: node by node, as said
run ir gpt_unscoped.ir --dot -o gpt_unscoped.dot
grep -q "gpt has [0-9]* nodes but no layers" out.txt && grep -q cluster_parameters gpt_unscoped.dot || { cat out.txt; fail "an IR without layers is not drawn node by node"; }
for phase in forward backward update; do
  run ir "$models/gpt.stag" --step --stage kernels --dot-scope h.0.attn:$phase -o attn_$phase.dot
  dot_svg attn_$phase
done
[ -n "$have_dot" ] && { $check scope gpt_opt.txt h.0.attn 5000 gpt_kernels.txt train_step attn_forward.svg attn_backward.svg attn_update.svg || fail "h.0.attn is not drawn in full"; }

# The Chrome trace of --profile-out, then the kernels' shares of it drawn on their clusters.
run ir "$models/mlp.stag" --stage kernels -o mlp_kernels.txt
run ir "$models/mlp.stag" --stage optimized -o mlp_opt.txt
run run "$models/mlp.stag" --repeat 3 --profile-out trace.json
$check trace trace.json mlp_kernels.txt forward || fail "the trace is not the profile of forward's kernels"
run ir "$models/mlp.stag" --stage kernels --dot --profile trace.json -o profiled.dot
dot_renders profiled mlp_opt.txt mlp_kernels.txt forward
[ -n "$have_dot" ] && { $check shares profiled.svg forward || fail "the clusters do not give the kernels' shares"; }

# A short training run: its run folder gets the evaluation pictures, and `stag eval --plots` draws
# the same pictures of the numbers it prints.
run train "$models/mlp.stag" --epochs 1 --max-steps 300 --validation 0.05 --threads 2 --run-dir run --log L.jsonl
grep -q "pictures: roc.svg, precision_recall.svg, confusion.svg in run" out.txt || { cat out.txt; fail "training named no pictures"; }
"$stag" eval "$models/mlp.stag" --weights run --plots eval >eval.out 2>&1 || { cat eval.out; fail "stag eval --plots failed"; }
$check roc eval/roc.svg eval.out || fail "the ROC curves are not the printed AUCs"
$check pr eval/precision_recall.svg || fail "the precision-recall curves do not give their AP"
$check confusion eval/confusion.svg eval.out || fail "the heatmap is not the printed confusion matrix"
for f in roc precision_recall confusion; do
  cmp -s run/$f.svg eval/$f.svg || fail "run/$f.svg differs from what stag eval drew of the same weights"
  svg_renders eval/$f.svg
done

# stag plot: SVG, and PNG through rsvg-convert, of the run's log.
run plot L.jsonl -o curves.svg
svg_renders curves.svg
if [ -n "$have_rsvg" ]; then
  run plot L.jsonl -o curves.png
  png_is curves.png $(python3 -c 'import re,sys; m = re.search(r"width=\"([\d.]+)\" height=\"([\d.]+)\"", open(sys.argv[1]).read()); print(round(float(m[1])), round(float(m[2])))' curves.svg)
fi

# Sample grids: 28x28 images, 2 pixels of padding around each (torchvision's make_grid).
grid() { echo $(($1 * 28 + ($1 + 1) * 2)); }
run train "$models/autoencoder.stag" --max-steps 2 --run-dir ae --no-test --validation 0.01 --threads 2
run sample "$models/autoencoder.stag" --weights ae --count 10 --columns 5 --scale 1 -o ae.png
png_is ae.png "$(grid 5)" "$(grid 4)"  # 10 test images above their 10 reconstructions
run train "$models/dcgan.stag" --max-steps 2 --batch 16 --run-dir gan --threads 2
run sample "$models/dcgan.stag" --weights gan --count 16 --columns 4 --scale 1 -o gan.png
png_is gan.png "$(grid 4)" "$(grid 4)"
png_is gan/samples/epoch-001.png $((2 * $(grid 8))) $((2 * $(grid 8)))  # the run's 64 samples, doubled

# Misuse: what the flags draw, and a trace of another program.
expect_usage() {  # expect_usage STATUS TEXT ARGS...: stag exits with STATUS and says TEXT
  local want=$1 text=$2
  shift 2
  "$stag" "$@" >out.txt 2>&1
  local got=$?
  [ "$got" -eq "$want" ] && grep -qF -- "$text" out.txt || { cat out.txt; fail "stag $* exited $got, expected $want and '$text'"; }
}
expect_usage 2 "--profile labels the kernels of --stage kernels --dot" ir "$models/mlp.stag" --dot --profile trace.json
expect_usage 1 "does not have" ir "$models/lenet5.stag" --stage kernels --dot --profile trace.json
expect_usage 1 "has no profile of the function train_step" ir "$models/mlp.stag" --step --stage kernels --dot --profile trace.json
expect_usage 2 "gpt has no layer 'h.9'" ir "$models/gpt.stag" --step --dot-scope h.9
expect_usage 2 "a layer's phase is forward, backward or update" ir "$models/gpt.stag" --dot-scope h.0:sideways
expect_usage 2 "--plots draws a classifier's" eval "$models/dcgan.stag" --weights gan --plots p

for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
echo "pictures: all checks passed"
