#!/usr/bin/env bash
# The owl command line: help and version; usage errors (unknown command or
# flag, bad or missing numbers) exit 2 with a one-line "owl ..." message
# naming what was wrong; runtime errors (missing, empty, garbage or truncated
# model files, a prompt longer than the context) exit 1 the same way; nothing
# crashes. owl bench runs a tiny measurement and prints a table and JSON.
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
TMP=${OWL_TMP:-/tmp}/e2e_cli
rm -rf "$TMP"
mkdir -p "$TMP"
PY=${OWL_PYTHON:-/usr/bin/python3}

TD=$OWL_TESTDATA
GGUF=$TD/models/stories260K.gguf
BIN=$TD/models/stories260K.bin
TOK=$TD/tokenizers/tinystories512/tok512.bin
source "$(dirname "$0")/shell_lib.sh"

# expect STATUS PATTERN ARGS...: owl ARGS exits with STATUS and its stderr
# is one line that starts with "owl" and contains PATTERN (fixed string),
# after any "owl: warning:" lines.
expect() {
    local want=$1 pattern=$2
    shift 2
    local rc=0
    "$OWL_BIN" "$@" > "$TMP/out" 2> "$TMP/err" < /dev/null || rc=$?
    local err
    # log warnings (from loading a model) may come first; the error is one line
    err=$(grep -v '^owl: warning: ' "$TMP/err" || true)
    if [[ $rc -ne $want ]]; then
        fail "owl $*: exit status $rc, want $want; stderr: $err"
    elif [[ $want -ne 0 && ( $(printf '%s\n' "$err" | wc -l) -ne 1 || $err != owl* ) ]]; then
        fail "owl $*: want one line starting with 'owl' on stderr, got: $err"
    elif [[ $err != *"$pattern"* ]]; then
        fail "owl $*: stderr does not mention '$pattern': $err"
    else
        echo "ok: owl $* -> $rc${err:+: $err}"
    fi
}

# help and version
for cmd in "" run tokenize bench; do
    if ! "$OWL_BIN" $cmd --help > "$TMP/help" 2> "$TMP/err"; then fail "owl $cmd --help failed"; fi
    grep -q "usage: owl" "$TMP/help" || fail "owl $cmd --help: no usage line"
done
"$OWL_BIN" --version | grep -q "^owl [0-9]" || fail "owl --version"
"$OWL_BIN" help run | grep -q "usage: owl run" || fail "owl help run"
# every flag the subcommands accept is documented in their --help
for flag in -p --prompt -f --file --no-bos --tokenizer -c --ctx-size -n --n-predict -t --threads --temp \
    --top-k --top-p --min-p --repeat-penalty --repeat-last-n -s --seed --ids -q --quiet; do
    "$OWL_BIN" run --help | grep -q -- "$flag\b" || fail "owl run --help does not document $flag"
done
for flag in -f --file --tokenizer --ids --no-bos --special; do
    "$OWL_BIN" tokenize --help | grep -q -- "$flag\b" || fail "owl tokenize --help does not document $flag"
done
for flag in -p --n-prompt -n --n-gen -r --repetitions -t --threads --tokenizer --bw-seconds --bw-mib \
    --no-bandwidth --json; do
    "$OWL_BIN" bench --help | grep -q -- "$flag\b" || fail "owl bench --help does not document $flag"
done

# usage errors: exit 2
expect 2 "no command"
expect 2 "'frobnicate'" frobnicate
expect 2 "'--bogus'" --bogus
expect 2 "no model" run
expect 2 "'--bogus'" run "$GGUF" --bogus
expect 2 "'abc'" run "$GGUF" -n abc
expect 2 "-n: -5" run "$GGUF" -n -5
expect 2 "'12x'" run "$GGUF" -n 12x
expect 2 "''" run "$GGUF" -n ""
expect 2 "'1e3'" run "$GGUF" -n 1e3
expect 2 "'99999999999999999999'" run "$GGUF" -n 99999999999999999999
expect 2 "-n needs a value" run "$GGUF" -n
expect 2 "'nan'" run "$GGUF" --temp nan
expect 2 "'inf'" run "$GGUF" --temp inf
expect 2 "--temp: -1" run "$GGUF" --temp -1
expect 2 "--top-p: 1.5" run "$GGUF" --top-p 1.5
expect 2 "--min-p: -0.1" run "$GGUF" --min-p -0.1
expect 2 "--repeat-penalty: 0" run "$GGUF" --repeat-penalty 0
expect 2 "'-1'" run "$GGUF" --seed -1
expect 2 "' 5'" run "$GGUF" -t " 5"
expect 2 "--top-k needs a value" run "$GGUF" --top-k
expect 2 "not both" run "$GGUF" -p hi -f /dev/null
expect 2 "unexpected argument" run "$GGUF" "$BIN"
expect 2 "no text" tokenize "$GGUF"
expect 2 "'--nope'" tokenize "$GGUF" hi --nope
expect 2 "no model" bench
expect 2 "-r: 0" bench "$GGUF" -r 0
expect 2 "nothing to measure" bench "$GGUF" -p 0 -n 0
expect 2 "--no-bos" run "$GGUF" -p "" --no-bos

# runtime errors: exit 1
expect 1 "$TMP/missing.gguf" run "$TMP/missing.gguf" -p hi
expect 1 "$TMP/missing.txt" run "$GGUF" -f "$TMP/missing.txt"
expect 1 "directory" run "$TMP" -p hi
: > "$TMP/empty.gguf"
expect 1 "empty.gguf" run "$TMP/empty.gguf" -p hi
"$PY" -c 'import random, sys; r = random.Random(7); sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(5000)))' \
    > "$TMP/garbage.bin"
expect 1 "garbage.bin" run "$TMP/garbage.bin" --tokenizer "$TOK" -p hi
head -c 100000 "$GGUF" > "$TMP/truncated.gguf"
expect 1 "truncated.gguf" run "$TMP/truncated.gguf" -p hi
head -c 20000 "$BIN" > "$TMP/truncated.bin"
expect 1 "truncated.bin" run "$TMP/truncated.bin" --tokenizer "$TOK" -p hi
expect 1 "nope.bin" run "$BIN" --tokenizer "$TMP/nope.bin" -p hi
expect 1 "missing.gguf" tokenize "$TMP/missing.gguf" hi
expect 1 "garbage.bin" tokenize "$TMP/garbage.bin" hi
expect 1 "garbage.bin" tokenize "$GGUF" hi --tokenizer "$TMP/garbage.bin"
expect 1 "tokenizer.bin" run "$BIN" -p hi # no tokenizer.bin beside it in models/
expect 1 "missing.gguf" bench "$TMP/missing.gguf"
long=$(printf 'Once upon a time there was a little girl. %.0s' {1..10})
expect 1 "context" run "$GGUF" -c 16 -p "$long"
expect 1 "context" run "$BIN" --tokenizer "$TOK" -c 16 -p "$long"

# owl tokenize on stories260K: one line per token, BOS first
if "$OWL_BIN" tokenize "$GGUF" "Once upon a time" > "$TMP/tok" 2> "$TMP/err"; then
    [[ $(wc -l < "$TMP/tok") -ge 2 ]] || fail "tokenize: too few lines: $(cat "$TMP/tok")"
    head -n 1 "$TMP/tok" | grep -q "^1	'<s>'$" || fail "tokenize: the first line is not BOS: $(head -n 1 "$TMP/tok")"
    grep -q "^[0-9][0-9]*	'▁*Once'$" "$TMP/tok" || fail "tokenize: no line for 'Once': $(cat "$TMP/tok")"
else
    fail "owl tokenize: $(cat "$TMP/err")"
fi
if "$OWL_BIN" tokenize "$GGUF" "Once" --ids --no-bos > "$TMP/tok" 2> "$TMP/err"; then
    [[ $(cat "$TMP/tok") =~ ^[0-9]+$ ]] || fail "tokenize --ids --no-bos 'Once': $(cat "$TMP/tok")"
else
    fail "owl tokenize --ids: $(cat "$TMP/err")"
fi

# owl bench: a tiny run, table and JSON
if "$OWL_BIN" bench "$GGUF" -p 16 -n 8 -r 2 -t 1 --bw-mib 8 --bw-seconds 0.05 > "$TMP/bench" 2> "$TMP/err"; then
    for word in pp16 tg8 bandwidth bytes/token achieved pp/tg; do
        grep -q "$word" "$TMP/bench" || fail "bench table has no '$word': $(cat "$TMP/bench")"
    done
else
    fail "owl bench: $(cat "$TMP/err")"
fi
if "$OWL_BIN" bench "$BIN" --tokenizer "$TOK" -p 16 -n 8 -r 3 -t 1 --bw-mib 8 --bw-seconds 0.05 --json \
    > "$TMP/bench.json" 2> "$TMP/err"; then
    if ! "$PY" - "$TMP/bench.json" <<'PYEOF'; then fail "bench --json: $(cat "$TMP/bench.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
assert r["arch"] == "llama" and r["weight_type"] == "F32", r
assert r["threads"] == 1 and r["repetitions"] == 3
assert r["n_vocab"] == 512 and r["n_layers"] == 5 and r["dim"] == 64
assert 0 < r["bytes_per_token"] <= r["weight_bytes"]
for t, n in (("pp", 16), ("tg", 8)):
    s = r[t]
    assert s["tokens"] == n and s["repetitions"] == 3
    assert 0 < s["tok_s_min"] <= s["tok_s_median"] <= s["tok_s_max"], s
assert r["bandwidth_gb_s"] > 0
def close(a, b):
    return abs(a - b) <= 1e-6 * abs(b)
assert close(r["tg_achieved_gb_s"], r["tg"]["tok_s_median"] * r["bytes_per_token"] / 1e9), r
assert close(r["tg_bandwidth_fraction"], r["tg_achieved_gb_s"] / r["bandwidth_gb_s"]), r
assert close(r["pp_tg_ratio"], r["pp"]["tok_s_median"] / r["tg"]["tok_s_median"]), r
print("ok: bench --json")
PYEOF
else
    fail "owl bench --json: $(cat "$TMP/err")"
fi

if ((failures)); then
    echo "e2e_cli: $failures failed" >&2
    exit 1
fi
echo "e2e_cli: all passed"
