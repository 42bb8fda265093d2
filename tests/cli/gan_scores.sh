#!/usr/bin/env bash
# The GAN quality scores with a classifier stag trained (LeNet-5, a few epochs): the test images
# against themselves are at distance 0 and the classifier is sure of them; uniform noise is far
# away; a generator's images are scored. Usage: gan_scores.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
"$stag" train "$models/lenet5.stag" --epochs 2 --validation 0.02 --no-test --threads 2 --run-dir lenet >l.out 2>&1 ||
  { cat l.out; fail "LeNet-5 did not train"; }
"$stag" train "$models/dcgan.stag" --max-steps 2 --batch 16 --run-dir g >g.out 2>&1 || { cat g.out; fail "the GAN did not train"; }
"$stag" eval "$models/dcgan.stag" --batch 16 --weights g --classifier "$models/lenet5.stag" --classifier-weights lenet \
  --score-count 500 >e.out 2>&1 || { cat e.out; fail "stag eval of the GAN failed"; }
cat e.out
read -r _ _ test_score test_distance < <(grep '^test images' e.out)
read -r _ _ noise_score noise_distance < <(grep '^uniform noise' e.out)
read -r _ _ _ gen_score gen_distance < <(grep '^dcgan (500 images)' e.out)
python3 - "$test_score" "$test_distance" "$noise_score" "$noise_distance" "$gen_score" "$gen_distance" <<'PY' || fail "scores out of their known ranges"
import sys
ts, td, ns, nd, gs, gd = map(float, sys.argv[1:])
assert td < 1e-6, f"test images against themselves: distance {td}"
assert ts > 6, f"a 2-epoch LeNet-5 should be sure of most test images (score {ts})"
assert nd > 20 and ns < 3, f"uniform noise: score {ns}, distance {nd}"
assert 1 <= gs <= 10 and gd > 0, f"generator: score {gs}, distance {gd}"
PY
echo "gan_scores: test images $test_score / $test_distance, noise $noise_score / $noise_distance; 1 passed, 0 failed"
