#!/usr/bin/env bash
# Continuous batching in owl serve: 8 concurrent streaming clients at
# temperature 0 (scripts/serve_load.py), one of them with a long prompt read
# in chunks of --batch-tokens while the others generate, each get exactly the
# text `owl run` gives for its prompt alone; the metrics show batches of
# several sequences. Then the same 8 clients again (prefix reuse of the slot
# caches) must give the same texts. Every wait is bounded; the server is
# always killed.
set -u
OWL=${OWL_BIN:?OWL_BIN not set}
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:?}
MODEL=${OWL_TESTDATA:?}/models/stories260K.gguf
TMP=$(mktemp -d "${OWL_TMP:-/tmp}/e2e_serve_batch.XXXXXX")
SPID=
cleanup() {
    [[ -n $SPID ]] && kill -9 "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
pass=0
failn=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { failn=$((failn + 1)); echo "FAIL: $*"; }

LONG="Once upon a time there was a little girl named Lily. She liked to play in the park with her friends. One day she found a big red ball under a tree and she was very happy."
cat >"$TMP/prompts" <<P
Once upon a time
The dog
Lily wanted to
One day a little girl
Tom and his friend
The sun was
A big red ball
$LONG
P
MAXT=(40 70 25 90 55 33 80 60)

"$OWL" serve "$MODEL" --port 0 -t 1 --no-auth --slots 8 --batch-tokens 8 -c 256 2>"$TMP/err" &
SPID=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(grep -o 'on http://127.0.0.1:[0-9]*' "$TMP/err" 2>/dev/null | sed 's/.*://')
    [[ -n $PORT ]] && break
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.05
done
[[ -n $PORT ]] || { echo "server did not start:"; cat "$TMP/err"; exit 1; }

# expected: owl run of each prompt alone
for i in $(seq 0 7); do
    p=$(sed -n "$((i + 1))p" "$TMP/prompts")
    timeout 60 "$OWL" run "$MODEL" -p "$p" -n "${MAXT[$i]}" --temp 0 -q -t 1 >"$TMP/run$i" 2>/dev/null
done

# one client per prompt, each with its own max_tokens, all started together
load() { # load OUTFILE
    local pids=() i p
    for i in $(seq 0 7); do
        p=$(sed -n "$((i + 1))p" "$TMP/prompts")
        timeout 120 "$PY" "$SRC/scripts/serve_load.py" --port "$PORT" --clients 1 --model stories260K --prompt "$p" \
            --max-tokens "${MAXT[$i]}" >"$1.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
}
compare() { # compare OUTFILE: each text equals owl run's
    "$PY" - "$1" "$TMP" <<'PYEOF'
import json, sys
out, tmp = sys.argv[1], sys.argv[2]
prompts = open(tmp + "/prompts").read().split("\n")
bad = 0
for i in range(8):
    r = json.load(open("%s.%d" % (out, i)))["results"][0]
    want = open("%s/run%d" % (tmp, i)).read()
    if r["error"] or prompts[i] + r["text"] != want.rstrip("\n") and prompts[i] + r["text"] != want:
        bad += 1
        print("client %d: %r\n  owl run: %r\n  error: %s" % (i, prompts[i] + r["text"], want, r["error"]))
sys.exit(1 if bad else 0)
PYEOF
}
load "$TMP/a"
if compare "$TMP/a"; then ok "8 concurrent streaming clients each equal owl run alone"; else bad "8 concurrent clients vs owl run"; fi
curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics"
if "$PY" - "$TMP/metrics" <<'PYEOF'
import sys
m = {}
for ln in open(sys.argv[1]):
    if ln.startswith("#") or not ln.strip():
        continue
    k, v = ln.rsplit(" ", 1)
    m[k] = float(v)
one = m['owl_batch_sequences_bucket{le="1"}']
n = m["owl_batch_sequences_count"]
eight = m['owl_batch_sequences_bucket{le="8"}']
# several batches held more than one sequence, none more than 8
sys.exit(0 if n > 0 and n - one >= 10 and eight == n and m["owl_batch_tokens_total"] > n else 1)
PYEOF
then ok "metrics: batches of several sequences"; else bad "metrics: $(grep owl_batch "$TMP/metrics")"; fi

load "$TMP/b"
if compare "$TMP/b"; then ok "again (slot caches reused): each equals owl run"; else bad "second round vs owl run"; fi
cached=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk '$1 == "owl_prompt_tokens_cached_total" {print $2}')
if [[ ${cached:-0} -gt 0 ]]; then ok "prefix reuse: $cached prompt tokens from slot caches"; else bad "no prefix reuse"; fi

kill -TERM "$SPID"
for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
if ! kill -0 "$SPID" 2>/dev/null; then wait "$SPID"; rc=$?; SPID=; else rc=124; fi
if [[ $rc == 0 ]]; then ok "SIGTERM: clean exit"; else bad "SIGTERM exit $rc"; fi

echo "e2e_serve_batch: $pass passed, $failn failed"
[[ $failn == 0 ]]
