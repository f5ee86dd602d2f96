# Shared by the shell tests: source it, run checks, then `exit_with_failures`.
failures=0

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}

# expect_error "substring" COMMAND...: COMMAND exits non-zero with exactly one line on
# stderr, which contains the substring (SPEC section 8).
expect_error() {
  local want=$1
  shift
  set +e
  "$@" > out.txt 2> err.txt
  local rc=$?
  set -e
  local lines
  lines=$(wc -l < err.txt)
  if [[ $rc -ne 0 && $lines -eq 1 ]] && grep -qF -- "$want" err.txt; then
    echo "ok: error '$want'"
  else
    echo "FAILED: expected error '$want' (rc=$rc, $lines lines):"
    cat err.txt
    failures=$((failures + 1))
  fi
}

exit_with_failures() {
  echo "$failures failed"
  exit $((failures > 0))
}
