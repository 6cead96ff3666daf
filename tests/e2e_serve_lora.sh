#!/usr/bin/env bash
# Adapters in owl serve (--lora NAME=PATH): concurrent requests for the base
# model and two adapters (random PEFT / GGUF adapters from
# tests/reference/make_lora.py on stories260K) share the batches and each
# equals `owl run --lora` greedy (non-streaming and streaming, "model":
# "BASE:NAME" and the "adapter" field); /v1/models lists them; keys scoped
# to an adapter; unknown adapters, contradicting fields and bad --lora flags
# are errors. Every wait is bounded; the server is always killed.
set -u
OWL=${OWL_BIN:?OWL_BIN not set}
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:?}
MODEL=${OWL_TESTDATA:?}/models/stories260K.gguf
TMP=$(mktemp -d "${OWL_TMP:-/tmp}/e2e_serve_lora.XXXXXX")
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
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
jget() { "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

"$PY" "$SRC/tests/reference/make_lora.py" --base "$MODEL" --out "$TMP/a1" --rank 4 --alpha 8 --seed 5 >/dev/null
"$PY" "$SRC/tests/reference/make_lora.py" --base "$MODEL" --out "$TMP/a2" --gguf "$TMP/a2.gguf" --rank 2 --alpha 2 \
    --targets q_proj,v_proj,down_proj --seed 9 >/dev/null
[[ -f $TMP/a1/adapter_model.safetensors && -f $TMP/a2.gguf ]] || { echo "make_lora.py failed"; exit 1; }

# ---- bad flags ----
exit_is() { # exit_is CODE PATTERN COMMAND...
    local want=$1 pat=$2
    shift 2
    timeout 30 "$@" >/dev/null 2>"$TMP/cli.err"
    local rc=$?
    [[ $rc == "$want" ]] && grep -q -- "$pat" "$TMP/cli.err"
}
check "--lora without '=': 2" exit_is 2 "NAME=PATH" "$OWL" serve "$MODEL" --no-auth --lora "$TMP/a1"
check "--lora with a bad name: 2" exit_is 2 "letters" "$OWL" serve "$MODEL" --no-auth --lora "a b=$TMP/a1"
check "--lora with an empty path: 2" exit_is 2 "no path" "$OWL" serve "$MODEL" --no-auth --lora "x="
check "--lora name twice: 2" exit_is 2 "twice" "$OWL" serve "$MODEL" --no-auth --lora "x=$TMP/a1" --lora "x=$TMP/a2.gguf"
check "--lora of a missing adapter: 1, names it" exit_is 1 "/nonexistent/ad" "$OWL" serve "$MODEL" --no-auth --lora "x=/nonexistent/ad"
printf 'not an adapter' >"$TMP/junk.gguf"
check "--lora of a broken file: 1, names it" exit_is 1 "junk.gguf" "$OWL" serve "$MODEL" --no-auth --lora "x=$TMP/junk.gguf"

# ---- expected texts: owl run --lora, greedy ----
P="Once upon a time"
N=40
timeout 60 "$OWL" run "$MODEL" -p "$P" -n $N --temp 0 -q -t 1 >"$TMP/run0"
timeout 60 "$OWL" run "$MODEL" --lora "$TMP/a1" -p "$P" -n $N --temp 0 -q -t 1 >"$TMP/run1"
timeout 60 "$OWL" run "$MODEL" --lora "$TMP/a2.gguf" -p "$P" -n $N --temp 0 -q -t 1 >"$TMP/run2"
check "the adapters change the greedy text" bash -c "! cmp -s '$TMP/run0' '$TMP/run1' && ! cmp -s '$TMP/run0' '$TMP/run2' && ! cmp -s '$TMP/run1' '$TMP/run2'"

DB=$TMP/keys.db
KALL=$("$OWL" keys create --name all --db "$DB" 2>/dev/null)
KONE=$("$OWL" keys create --name one --models stories260K:one --db "$DB" 2>/dev/null)
KANY=$("$OWL" keys create --name anyad --models 'stories260K:*' --db "$DB" 2>/dev/null)
"$OWL" serve "$MODEL" --port 0 -t 1 --keys "$DB" --slots 4 -c 256 --lora "one=$TMP/a1" --lora "two=$TMP/a2.gguf" 2>"$TMP/err" &
SPID=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(grep -o 'on http://127.0.0.1:[0-9]*' "$TMP/err" 2>/dev/null | sed 's/.*://')
    [[ -n $PORT ]] && break
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.05
done
[[ -n $PORT ]] || { echo "server did not start:"; cat "$TMP/err"; exit 1; }
URL=http://127.0.0.1:$PORT

post() { # post OUT KEY BODY: prints the status
    curl -s -o "$1" -w '%{http_code}' --max-time 60 -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        --data-binary "$3" "$URL/v1/completions"
}
body() { echo "{\"model\":\"$1\",\"prompt\":\"$P\",\"max_tokens\":$N,\"temperature\":0${2:-}}"; }
export PY URL P N
export -f jget post body

# concurrent: base, one (model), two (adapter field), one again streamed, base streamed
post "$TMP/c0" "$KALL" "$(body stories260K)" >"$TMP/s0" &
p0=$!
post "$TMP/c1" "$KALL" "$(body stories260K:one)" >"$TMP/s1" &
p1=$!
post "$TMP/c2" "$KALL" "$(body stories260K ',"adapter":"two"')" >"$TMP/s2" &
p2=$!
timeout 60 "$PY" "$SRC/scripts/serve_load.py" --port "$PORT" --key "$KALL" --model stories260K:one --clients 1 \
    --prompt "$P" --max-tokens $N >"$TMP/st1" &
p3=$!
timeout 60 "$PY" "$SRC/scripts/serve_load.py" --port "$PORT" --key "$KALL" --model stories260K:two --clients 1 \
    --prompt "$P" --max-tokens $N >"$TMP/st2" &
p4=$!
wait $p0 $p1 $p2 $p3 $p4
same() { # same STATUSFILE RESPONSE RUNFILE
    [[ $(cat "$1") == 200 ]] && [[ "$P$(jget "$2" 'j["choices"][0]["text"]')" == "$(cat "$3")" ]]
}
check "base in the batch equals owl run" same "$TMP/s0" "$TMP/c0" "$TMP/run0"
check "model BASE:one equals owl run --lora a1" same "$TMP/s1" "$TMP/c1" "$TMP/run1"
check "adapter field two equals owl run --lora a2.gguf" same "$TMP/s2" "$TMP/c2" "$TMP/run2"
check "responses name the adapter model" bash -c "[[ \$(jget '$TMP/c1' 'j[\"model\"]') == stories260K:one && \$(jget '$TMP/c2' 'j[\"model\"]') == stories260K:two ]]"
check "streamed one equals owl run --lora a1" bash -c "[[ \"$P\$(jget '$TMP/st1' 'j[\"results\"][0][\"text\"]')\" == \"\$(cat '$TMP/run1')\" ]]"
check "streamed two equals owl run --lora a2.gguf" bash -c "[[ \"$P\$(jget '$TMP/st2' 'j[\"results\"][0][\"text\"]')\" == \"\$(cat '$TMP/run2')\" ]]"
check "the batches held several sequences" bash -c "curl -s --max-time 5 '$URL/metrics' | awk '\$1 == \"owl_batch_sequences_bucket{le=\\\"1\\\"}\" {a=\$2} \$1 == \"owl_batch_sequences_count\" {n=\$2} END {exit !(n > a)}'"

# again, sequentially: the slot caches of other adapters must not be reused
s=$(post "$TMP/d1" "$KALL" "$(body stories260K:two)")
check "two after one in the same slots equals owl run" same <(echo "$s") "$TMP/d1" "$TMP/run2"
s=$(post "$TMP/d0" "$KALL" "$(body stories260K)")
check "base after the adapters equals owl run" same <(echo "$s") "$TMP/d0" "$TMP/run0"

# /v1/models and keys
curl -s --max-time 5 -H "Authorization: Bearer $KALL" "$URL/v1/models" >"$TMP/models"
check "/v1/models lists the base and both adapters" bash -c "[[ \$(jget '$TMP/models' 'sorted(m[\"id\"] for m in j[\"data\"])') == \"['stories260K', 'stories260K:one', 'stories260K:two']\" ]]"
curl -s --max-time 5 -H "Authorization: Bearer $KONE" "$URL/v1/models" >"$TMP/models1"
check "a key scoped to one adapter sees only it" bash -c "[[ \$(jget '$TMP/models1' '[m[\"id\"] for m in j[\"data\"]]') == \"['stories260K:one']\" ]]"
check "scoped key: its adapter 200" bash -c "[[ \$(post '$TMP/k1' '$KONE' '$(body stories260K:one)') == 200 ]]"
check "scoped key: the base 404" bash -c "[[ \$(post '$TMP/k2' '$KONE' '$(body stories260K)') == 404 ]]"
check "scoped key: the other adapter 404" bash -c "[[ \$(post '$TMP/k3' '$KONE' '$(body stories260K:two)') == 404 ]]"
check "MODEL:* key: any adapter 200, not the base" bash -c "[[ \$(post '$TMP/k4' '$KANY' '$(body stories260K:two)') == 200 && \$(post '$TMP/k5' '$KANY' '$(body stories260K)') == 404 ]]"
check "GET /v1/models/BASE:one" bash -c "[[ \$(curl -s --max-time 5 -H 'Authorization: Bearer $KALL' '$URL/v1/models/stories260K:one' | \"$PY\" -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])') == stories260K:one ]]"

# bad requests
s=$(post "$TMP/e1" "$KALL" "$(body stories260K:three)")
check "unknown adapter: 404 model_not_found" bash -c "[[ $s == 404 && \$(jget '$TMP/e1' 'j[\"error\"][\"code\"]') == model_not_found ]]"
s=$(post "$TMP/e2" "$KALL" "$(body stories260K:one ',"adapter":"two"')")
check "model and adapter contradict: 400 naming adapter" bash -c "[[ $s == 400 && \$(jget '$TMP/e2' 'j[\"error\"][\"param\"]') == adapter ]]"
s=$(post "$TMP/e3" "$KALL" "$(body stories260K ',"adapter":7')")
check "adapter not a string: 400" bash -c "[[ $s == 400 ]]"
s=$(post "$TMP/e4" "$KALL" "$(body stories260K ',"adapter":"nope"')")
check "adapter field unknown: 404" bash -c "[[ $s == 404 ]]"
s=$(post "$TMP/e5" "$KALL" "$(body 'stories260K:')")
check "model BASE: with no name: 404" bash -c "[[ $s == 404 ]]"

kill -TERM "$SPID"
for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
if ! kill -0 "$SPID" 2>/dev/null; then wait "$SPID"; rc=$?; SPID=; else rc=124; fi
check "SIGTERM: clean exit" test "$rc" == 0

echo "e2e_serve_lora: $pass passed, $failn failed"
[[ $failn == 0 ]]
