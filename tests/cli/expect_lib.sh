# Counted checks for the CLI error tests (sourced; the caller sets stag and tmp).
pass=0 fail=0

# expect STATUS "TEXT" -- ARGS...: the command exits with STATUS and stderr contains TEXT.
expect() {
  local want=$1 text=$2; shift 3
  "$stag" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq "$want" ] && grep -qF -- "$text" "$tmp/err"; then pass=$((pass + 1)); else
    echo "FAIL: stag $* -> exit $rc (want $want), stderr:"; cat "$tmp/err"; echo "(wanted: $text)"; fail=$((fail + 1))
  fi
}
