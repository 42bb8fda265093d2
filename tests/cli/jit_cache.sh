#!/usr/bin/env bash
# The JIT's object cache as documented: a second `stag run` of a model takes every part of its
# code from the cache and computes the same outputs bit for bit; a damaged entry, an entry of
# another model, or a cache directory that cannot be written are misses that compile afresh,
# never errors; so is code compiled with other STAG_LLVM_FLAGS; STAG_JIT_CACHE=off never
# touches the directory.
# Usage: jit_cache.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
model=$models/mlp.stag
run() {  # run CACHE OUT_DIR LOG
  STAG_JIT_CACHE=$1 "$stag" run "$model" --seed 5 --out-dir "$2" > "$3" 2>&1 || { cat "$3"; fail "stag run failed (cache $1)"; }
}
same() { for f in logits loss; do cmp -s "$tmp/ref/$f.npy" "$1/$f.npy" || fail "$f differs: $2"; done; }

run off "$tmp/ref" "$tmp/ref.log"
grep -q "JIT cache" "$tmp/ref.log" && fail "STAG_JIT_CACHE=off used a cache"
run "$tmp/cache" "$tmp/cold" "$tmp/cold.log"
grep -q "JIT cache" "$tmp/cold.log" && { cat "$tmp/cold.log"; fail "an empty cache served a part"; }
entries=$(ls "$tmp/cache" | grep -c '\.o$')
[ "$entries" -ge 1 ] || fail "the first run stored nothing in the cache"
ls "$tmp/cache" | grep -q '\.tmp$' && fail "a temporary file was left in the cache"
same "$tmp/cold" "first run with a cache"

run "$tmp/cache" "$tmp/warm" "$tmp/warm.log"
grep -qE "([0-9]+) of \1 parts? from the JIT cache" "$tmp/warm.log" || { cat "$tmp/warm.log"; fail "the second run did not take every part from the cache"; }
same "$tmp/warm" "code from the cache"

# LLVM flags from the environment change the code: a miss.
STAG_LLVM_FLAGS=-unroll-threshold=0 run "$tmp/cache" "$tmp/flags" "$tmp/flags.log"
grep -q "JIT cache" "$tmp/flags.log" && { cat "$tmp/flags.log"; fail "code compiled without STAG_LLVM_FLAGS was used with them"; }
rm -f "$tmp"/cache/*.o
run "$tmp/cache" "$tmp/warm2" "$tmp/warm2.log"

# Damage every entry (one flipped byte in the middle): each is a miss, compiled and stored again.
for f in "$tmp"/cache/*.o; do
  size=$(stat -c %s "$f")
  printf '\xff' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
done
run "$tmp/cache" "$tmp/damaged" "$tmp/damaged.log"
grep -q "JIT cache" "$tmp/damaged.log" && { cat "$tmp/damaged.log"; fail "a damaged entry was used"; }
same "$tmp/damaged" "after damaged entries"
run "$tmp/cache" "$tmp/mended" "$tmp/mended.log"
grep -qE "([0-9]+) of \1 parts? from the JIT cache" "$tmp/mended.log" || { cat "$tmp/mended.log"; fail "damaged entries were not stored again"; }

# A truncated entry, and a different model in the same cache: misses.
for f in "$tmp"/cache/*.o; do head -c 20 "$f" > "$f.cut" && mv "$f.cut" "$f"; done
run "$tmp/cache" "$tmp/cut" "$tmp/cut.log"
grep -q "JIT cache" "$tmp/cut.log" && fail "a truncated entry was used"
same "$tmp/cut" "after truncated entries"
STAG_JIT_CACHE=$tmp/cache "$stag" run "$models/lenet5.stag" --seed 5 --out-dir "$tmp/lenet" > "$tmp/lenet.log" 2>&1 || { cat "$tmp/lenet.log"; fail "LeNet-5 failed"; }
grep -q "JIT cache" "$tmp/lenet.log" && fail "LeNet-5 took code cached for the MLP"

# A directory that cannot be written: the run works and reports no cache.
mkdir "$tmp/ro" && chmod a-w "$tmp/ro"
if [ ! -w "$tmp/ro" ]; then  # root may write anyway
  run "$tmp/ro/jit" "$tmp/ro_out" "$tmp/ro.log"
  same "$tmp/ro_out" "with an unwritable cache"
fi
echo "ok: cold, warm, damaged, truncated, other model and unwritable cache"
