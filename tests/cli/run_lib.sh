# Helpers the run-folder tests share (sourced).
fail() { echo "FAIL: $*"; exit 1; }
# The tensor bytes of a safetensors file, without its JSON header (whose metadata may differ).
tensors() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
same_tensors() { cmp -s <(tensors "$1") <(tensors "$2"); }
steps() { grep '"event":"step"' "$1"; }
# Waits until the run's log has at least $2 steps (or the run $3 ended).
wait_steps() {
  for _ in $(seq 3000); do
    n=$(grep -c '"event":"step"' "$1" 2>/dev/null)
    [ "${n:-0}" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
