# Shared by the tests/e2e_*.sh scripts (sourced, not a test itself): the
# failure counter and the checks that run owl and compare its exit status
# and messages. The caller sets OWL_BIN and TMP, and ends with
# [ "$failures" -eq 0 ] (or its own summary).
# shellcheck shell=bash
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
# owl_ok NAME ARGS...: owl must succeed; stdout in $TMP/NAME.out
owl_ok() {
    local name=$1
    shift
    if ! "$OWL_BIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"; then
        fail "$name: owl $* exited with status $?: $(tail -n 3 "$TMP/$name.err")"
        return 1
    fi
    ok "$name"
}
# owl_fails NAME WANT_STATUS PATTERN ARGS...: exit WANT_STATUS, PATTERN (grep -E) on stderr
owl_fails() {
    local name=$1 want=$2 pat=$3
    shift 3
    "$OWL_BIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
    local rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$name: owl $* exited with $rc, want $want: $(cat "$TMP/$name.err")"
    elif ! grep -Eq -- "$pat" "$TMP/$name.err"; then
        fail "$name: message '$(cat "$TMP/$name.err")' lacks '$pat'"
    else
        ok "$name: $(head -c 300 "$TMP/$name.err")"
    fi
}
