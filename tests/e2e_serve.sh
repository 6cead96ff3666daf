#!/usr/bin/env bash
# owl serve end to end: a real server on a loopback port driven with curl.
# Completions at temperature 0 must equal `owl run`; errors must follow
# OpenAI's error object and statuses; keys, rate limits, the queue, client
# disconnects, SIGTERM and the audit chain are checked. Every wait is bounded;
# the servers are always killed.
set -u
OWL=${OWL_BIN:?OWL_BIN not set}
PY=${OWL_PYTHON:-/usr/bin/python3}
MODEL=${OWL_TESTDATA:?}/models/stories260K.gguf
TMP=$(mktemp -d "${OWL_TMP:-/tmp}/e2e_serve.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

pass=0
failn=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { failn=$((failn + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND...
    local d=$1
    shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
# jget FILE PYTHON-EXPRESSION (j is the parsed JSON)
jget() { "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
export PY
export -f jget

# start_server NAME ARGS...: sets PORT and SPID
start_server() {
    local name=$1
    shift
    "$OWL" serve "$MODEL" --port 0 -t 1 "$@" 2>"$TMP/$name.err" &
    SPID=$!
    PIDS+=("$SPID")
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(grep -o 'on http://127.0.0.1:[0-9]*' "$TMP/$name.err" 2>/dev/null | sed 's/.*://')
        [[ -n $PORT ]] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $PORT ]]; then
        echo "server $name did not start:"
        cat "$TMP/$name.err"
        exit 1
    fi
}
# req OUT METHOD PATH [KEY] [BODY]: prints the status; headers in OUT.h
req() {
    local out=$1 method=$2 path=$3 key=${4:-} body=${5:-}
    local args=(-s -o "$out" -D "$out.h" -w '%{http_code}' --max-time 20 -X "$method")
    [[ -n $key ]] && args+=(-H "Authorization: Bearer $key")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "http://127.0.0.1:$PORT$path"
}
wait_exit() { # wait_exit PID SECONDS: exit status or 124
    local pid=$1 n=$(($2 * 20))
    for _ in $(seq 1 "$n"); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            return $?
        fi
        sleep 0.05
    done
    return 124
}
metric() { curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

errcheck() { # errcheck DESC EXPECTED_STATUS STATUS FILE [CODE]
    local d=$1 want=$2 got=$3 f=$4 code=${5:-}
    local typ
    typ=$(jget "$f" '("message" in j["error"]) and ("type" in j["error"]) and ("param" in j["error"]) and ("code" in j["error"])')
    if [[ $got == "$want" && $typ == True ]] && { [[ -z $code ]] || [[ $(jget "$f" 'j["error"]["code"]') == "$code" ]]; }; then
        ok "$d"
    else
        bad "$d (status $got, body $(head -c 300 "$f"))"
    fi
}
# ---- command-line errors: usage 2, runtime 1, a message naming the problem ----
exit_is() { # exit_is CODE PATTERN COMMAND...
    local want=$1 pat=$2
    shift 2
    "$@" >/dev/null 2>"$TMP/cli.err"
    local rc=$?
    [[ $rc == "$want" ]] && grep -q -- "$pat" "$TMP/cli.err"
}
check "serve without a model: 2" exit_is 2 "no model" "$OWL" serve
check "serve --port 70000: 2" exit_is 2 "70000" "$OWL" serve "$MODEL" --port 70000
check "serve --host nope: 1" exit_is 1 "nope" "$OWL" serve "$MODEL" --host nope --no-auth
check "serve with a key database it cannot open: 1" exit_is 1 "/nonexistent/k.db" "$OWL" serve "$MODEL" --keys /nonexistent/k.db
check "keys create without --name: 2" exit_is 2 "name" "$OWL" keys create
check "keys with an unknown subcommand: 2" exit_is 2 "frob" "$OWL" keys frob
check "audit verify of a missing file: 1" exit_is 1 "/nonexistent" "$OWL" audit verify /nonexistent

# ---- keys ----
DB=$TMP/keys.db
K1=$("$OWL" keys create --name all --db "$DB" 2>/dev/null)
K2=$("$OWL" keys create --name other --models some-other-model --db "$DB" 2>/dev/null)
K3=$("$OWL" keys create --name gone --db "$DB" 2>/dev/null)
K4=$("$OWL" keys create --name slow --rpm 2 --db "$DB" 2>/dev/null)
check "keys create prints owl- + 64 hex" bash -c "[[ '$K1' =~ ^owl-[0-9a-f]{64}$ && '$K1' != '$K2' ]]"
"$OWL" keys revoke 3 --db "$DB" 2>/dev/null
check "keys list shows the revoked key and no secret" bash -c \
    "\"$OWL\" keys list --db \"$DB\" | grep -q '^3 .*gone .*revoked' && ! \"$OWL\" keys list --db \"$DB\" | grep -q '${K1:4:16}'"
check "the database holds only hashes" bash -c "! grep -aq '${K1:4}' '$DB'"
check "keys revoke of an unknown id fails" bash -c "! \"$OWL\" keys revoke 99 --db \"$DB\" 2>/dev/null"

# ---- server 1: auth, audit ----
AUD=$TMP/audit.log
start_server s1 --keys "$DB" --audit "$AUD" --max-body 4096 --max-tokens-cap 1000 -c 128 --slots 2
check "health" bash -c "[[ \$(curl -s --max-time 5 http://127.0.0.1:$PORT/health) == *ok* ]]"

s=$(req "$TMP/m" GET /v1/models "$K1")
check "models lists stories260K" bash -c "[[ $s == 200 ]] && [[ \$(jget '$TMP/m' 'j[\"data\"][0][\"id\"]') == stories260K ]]"

PROMPT="Once upon a time"
s=$(req "$TMP/c1" POST /v1/completions "$K1" "{\"model\":\"stories260K\",\"prompt\":\"$PROMPT\",\"max_tokens\":40,\"temperature\":0}")
TEXT=$(jget "$TMP/c1" 'j["choices"][0]["text"]')
RUN=$("$OWL" run "$MODEL" -p "$PROMPT" -n 40 --temp 0 -q -t 1)
[[ $s == 200 && -n $TEXT && "$PROMPT$TEXT" == "$RUN" ]]
check "completion at temperature 0 equals owl run" test $? -eq 0
check "completion usage and finish_reason" bash -c \
    "[[ \$(jget '$TMP/c1' '(j[\"usage\"][\"prompt_tokens\"] > 1, j[\"usage\"][\"completion_tokens\"], j[\"usage\"][\"total_tokens\"] - j[\"usage\"][\"prompt_tokens\"], j[\"choices\"][0][\"finish_reason\"], j[\"object\"])') == \"(True, 40, 40, 'length', 'text_completion')\" ]]"

curl -s -N --max-time 20 -H "Authorization: Bearer $K1" -H 'Content-Type: application/json' \
    -d "{\"model\":\"stories260K\",\"prompt\":\"$PROMPT\",\"max_tokens\":40,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
    "http://127.0.0.1:$PORT/v1/completions" >"$TMP/sse"
STREAMED=$("$PY" - "$TMP/sse" <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
events = [e for e in raw.split("\n\n") if e]
assert all(e.startswith("data: ") for e in events), "not SSE"
assert events[-1] == "data: [DONE]", "no [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
fin = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
usage = chunks[-1]["usage"]
assert fin == ["length"] and usage["completion_tokens"] == 40 and chunks[-1]["choices"] == []
print(text)
EOF
)
[[ -n $STREAMED && "$STREAMED" == "$TEXT" ]]
check "streamed completion equals the whole one (SSE, finish, usage, [DONE])" test $? -eq 0

# two slots at once: each answer equals its own owl run
P2="The dog"
J1="{\"model\":\"stories260K\",\"prompt\":\"$PROMPT\",\"max_tokens\":60,\"temperature\":0}"
J2="{\"model\":\"stories260K\",\"prompt\":\"$P2\",\"max_tokens\":60,\"temperature\":0}"
curl -s --max-time 20 -H "Authorization: Bearer $K1" -d "$J1" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/par1" &
c1=$!
curl -s --max-time 20 -H "Authorization: Bearer $K1" -d "$J2" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/par2" &
c2=$!
wait $c1 $c2
RUN1=$("$OWL" run "$MODEL" -p "$PROMPT" -n 60 --temp 0 -q -t 1)
RUN2=$("$OWL" run "$MODEL" -p "$P2" -n 60 --temp 0 -q -t 1)
[[ "$PROMPT$(jget "$TMP/par1" 'j["choices"][0]["text"]')" == "$RUN1" && "$P2$(jget "$TMP/par2" 'j["choices"][0]["text"]')" == "$RUN2" ]]
check "two concurrent requests in two slots each equal owl run" test $? -eq 0

# logprobs: the prompt as token ids, greedy, against the NumPy float64 reference
s=$(req "$TMP/lp" POST /v1/completions "$K1" '{"model":"stories260K","prompt":[1,403,407,261,378],"max_tokens":8,"temperature":0,"logprobs":5}')
check "completions logprobs (token ids in) equal the reference log-softmax, top 5 sorted" \
    "$PY" - "$MODEL" "$TMP/lp" "$OWL_SOURCE_DIR/tests/reference" <<'EOF'
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import llama_ref
meta, W = llama_ref.read_gguf(sys.argv[1])
hp = llama_ref.hparams_from_meta(meta, W)
j = json.load(open(sys.argv[2]))
c = j["choices"][0]
lp = c["logprobs"]
assert j["usage"]["prompt_tokens"] == 5 and len(lp["token_logprobs"]) == 8
assert "".join(lp["tokens"]) == c["text"]
assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(8)]
toks = [1, 403, 407, 261, 378]
for i in range(8):
    x = llama_ref.forward(W, hp, toks)[-1]
    ls = x - (x.max() + np.log(np.exp(x - x.max()).sum()))
    t = int(np.argmax(ls))
    assert abs(lp["token_logprobs"][i] - ls[t]) < 1e-3, (i, lp["token_logprobs"][i], ls[t])
    got = sorted(lp["top_logprobs"][i].values(), reverse=True)
    want = np.sort(ls)[::-1][:5]
    assert len(got) == 5 and np.abs(np.array(got) - want).max() < 1e-3, (got, want)
    toks.append(t)
EOF
s=$(req "$TMP/lpc" POST /v1/chat/completions "$K1" '{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":3}')
check "chat logprobs: token texts join to the answer, chosen = most likely at temperature 0" "$PY" - "$TMP/lpc" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["choices"][0]
content = c["logprobs"]["content"]
assert "".join(e["token"] for e in content) == c["message"]["content"]
for e in content:
    assert bytes(e["bytes"]).decode() == e["token"] and len(e["top_logprobs"]) == 3
    assert e["top_logprobs"][0]["logprob"] == e["logprob"] and e["logprob"] <= 0
EOF

# stop strings: the text ends before the first match, whole and streamed
STOPJ="{\"model\":\"stories260K\",\"prompt\":\"$PROMPT\",\"max_tokens\":40,\"temperature\":0,\"stop\":[\"zzz\",\"little\"]"
req "$TMP/st" POST /v1/completions "$K1" "$STOPJ}" >/dev/null
curl -s -N --max-time 20 -H "Authorization: Bearer $K1" -d "$STOPJ,\"stream\":true}" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/st.sse"
check "stop strings: cut before the first match, finish_reason stop, streamed the same" "$PY" - "$TMP/st" "$TMP/st.sse" "$TEXT" <<'EOF'
import json, sys
full = sys.argv[3]
assert "little" in full
want = full[:full.index("little")]
j = json.load(open(sys.argv[1]))
assert j["choices"][0]["text"] == want and j["choices"][0]["finish_reason"] == "stop", j
events = [e for e in open(sys.argv[2]).read().split("\n\n") if e]
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert "".join(c["choices"][0]["text"] for c in chunks) == want
assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
EOF

CHAT='{"model":"stories260K","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0,"seed":7}'
s=$(req "$TMP/ch" POST /v1/chat/completions "$K1" "$CHAT")
check "chat completion object" bash -c \
    "[[ $s == 200 ]] && [[ \$(jget '$TMP/ch' '(j[\"object\"], j[\"choices\"][0][\"message\"][\"role\"], j[\"choices\"][0][\"finish_reason\"] in (\"stop\",\"length\"), j[\"usage\"][\"completion_tokens\"] <= 16, j[\"id\"].startswith(\"chatcmpl-\"))') == \"('chat.completion', 'assistant', True, True, True)\" ]]"
curl -s -N --max-time 20 -H "Authorization: Bearer $K1" -d "${CHAT%\}},\"stream\":true}" \
    "http://127.0.0.1:$PORT/v1/chat/completions" >"$TMP/chsse"
check "chat streaming: role chunk, deltas equal the whole answer, [DONE]" "$PY" - "$TMP/chsse" "$TMP/ch" <<'EOF'
import json, sys
events = [e for e in open(sys.argv[1]).read().split("\n\n") if e]
assert events[-1] == "data: [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
whole = json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
assert text == whole, (text, whole)
EOF

# prefix reuse: the same chat again finds its prompt in a slot's cache
c0=$(metric owl_prompt_tokens_cached_total)
req "$TMP/ch2" POST /v1/chat/completions "$K1" "$CHAT" >/dev/null
c1=$(metric owl_prompt_tokens_cached_total)
check "prefix reuse: a repeated prompt is served from the slot's cache, same answer" bash -c \
    "(( $c1 - $c0 > 10 )) && cmp -s <(jget '$TMP/ch' 'j[\"choices\"][0][\"message\"]') <(jget '$TMP/ch2' 'j[\"choices\"][0][\"message\"]')"

# embeddings: mean-pooled, L2-normalised final hidden states vs the float64 reference
s=$(req "$TMP/emb" POST /v1/embeddings "$K1" '{"model":"stories260K","input":[[1,403,407,261,378],[1,9,10]]}')
check "embeddings equal the NumPy float64 reference (mean of final normed states, unit length)" \
    "$PY" - "$MODEL" "$TMP/emb" "$OWL_SOURCE_DIR/tests/reference" <<'EOF'
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import llama_ref
meta, W = llama_ref.read_gguf(sys.argv[1])
hp = llama_ref.hparams_from_meta(meta, W)
dim = W["token_embd.weight"].shape[1]
W = dict(W)
W["output.weight"] = np.eye(dim)  # the "logits" are then the final normed hidden states
got = json.load(open(sys.argv[2]))
assert got["object"] == "list" and got["usage"]["prompt_tokens"] == 8
for k, toks in enumerate([[1, 403, 407, 261, 378], [1, 9, 10]]):
    v = llama_ref.forward(W, hp, toks).mean(axis=0)
    v /= np.linalg.norm(v)
    g = np.array(got["data"][k]["embedding"])
    assert g.shape == (dim,) and np.abs(g - v).max() < 1e-5, np.abs(g - v).max()
EOF
errcheck "embeddings: wrong input type 400" 400 "$(req "$TMP/e" POST /v1/embeddings "$K1" '{"model":"stories260K","input":{"a":1}}')" "$TMP/e"

# auth and routing errors
B='{"model":"stories260K","prompt":"Hi","max_tokens":2}'
errcheck "no key: 401" 401 "$(req "$TMP/e" POST /v1/completions "" "$B")" "$TMP/e" invalid_api_key
errcheck "wrong key: 401" 401 "$(req "$TMP/e" POST /v1/completions "owl-0000" "$B")" "$TMP/e" invalid_api_key
errcheck "revoked key: 401" 401 "$(req "$TMP/e" POST /v1/completions "$K3" "$B")" "$TMP/e" invalid_api_key
errcheck "key not scoped to the model: 404" 404 "$(req "$TMP/e" POST /v1/completions "$K2" "$B")" "$TMP/e" model_not_found
errcheck "unknown model: 404" 404 "$(req "$TMP/e" POST /v1/completions "$K1" '{"model":"gpt-9","prompt":"Hi"}')" "$TMP/e" model_not_found
errcheck "unknown route: 404" 404 "$(req "$TMP/e" GET /v1/nothing "$K1")" "$TMP/e"
errcheck "malformed JSON: 400" 400 "$(req "$TMP/e" POST /v1/completions "$K1" '{"model":"stories260K","prompt":')" "$TMP/e"
errcheck "max_tokens as a string: 400" 400 "$(req "$TMP/e" POST /v1/completions "$K1" '{"model":"stories260K","prompt":"Hi","max_tokens":"5"}')" "$TMP/e"
check "the 400 names the parameter" bash -c "[[ \$(jget '$TMP/e' 'j[\"error\"][\"param\"]') == max_tokens ]]"
errcheck "messages not an array: 400" 400 "$(req "$TMP/e" POST /v1/chat/completions "$K1" '{"model":"stories260K","messages":"hi"}')" "$TMP/e"
errcheck "temperature out of range: 400" 400 "$(req "$TMP/e" POST /v1/chat/completions "$K1" '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"temperature":9}')" "$TMP/e"
errcheck "n=2: 400" 400 "$(req "$TMP/e" POST /v1/chat/completions "$K1" '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"n":2}')" "$TMP/e"
errcheck "max_tokens beyond the context: 400" 400 "$(req "$TMP/e" POST /v1/completions "$K1" '{"model":"stories260K","prompt":"Hi","max_tokens":200}')" "$TMP/e" context_length_exceeded
HUGE=$("$PY" -c 'print("{\"model\":\"stories260K\",\"prompt\":\"" + "a" * 6000 + "\"}")')
errcheck "body over --max-body: 413" 413 "$(req "$TMP/e" POST /v1/completions "$K1" "$HUGE")" "$TMP/e"
s1=$(req "$TMP/r" POST /v1/completions "$K4" "$B")
s2=$(req "$TMP/r" POST /v1/completions "$K4" "$B")
s3=$(req "$TMP/r" POST /v1/completions "$K4" "$B")
check "rpm 2: third request 429 with Retry-After" bash -c \
    "[[ $s1 == 200 && $s2 == 200 && $s3 == 429 ]] && grep -qi '^Retry-After: [0-9]' '$TMP/r.h'"

curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics"
check "metrics: requests by route and status, tokens, histograms, slots" bash -c "
    grep -q '^owl_requests_total{route=\"/v1/completions\",status=\"200\"} [1-9]' '$TMP/metrics' &&
    grep -q '^owl_requests_total{route=\"/v1/completions\",status=\"401\"} 3' '$TMP/metrics' &&
    grep -q '^owl_generation_tokens_total [1-9]' '$TMP/metrics' && grep -q '^owl_time_to_first_token_seconds_count [1-9]' '$TMP/metrics' &&
    grep -q '^owl_time_per_output_token_seconds_bucket{le=\"+Inf\"} [1-9]' '$TMP/metrics' && grep -q '^owl_slots_active 0' '$TMP/metrics' &&
    grep -q '^owl_queue_depth 0' '$TMP/metrics'"

# the official openai npm client (skipped, not counted, when npm or its registry is unreachable)
if command -v node >/dev/null && command -v npm >/dev/null &&
    (cd "$TMP" && timeout 40 npm install --no-audit --no-fund --silent --prefix "$TMP/npm" openai@4 >/dev/null 2>&1) &&
    [[ -d $TMP/npm/node_modules/openai ]]; then
    cat >"$TMP/npm/client.mjs" <<'EOF'
import OpenAI from "openai";
const [port, key, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
const msgs = [{ role: "user", content: "Tell me a story" }];
const whole = await client.chat.completions.create({ model, messages: msgs, max_tokens: 12, temperature: 0 });
if (whole.object !== "chat.completion" || whole.choices[0].message.role !== "assistant") throw new Error("bad object");
let text = "", fin = null, usage = null;
const stream = await client.chat.completions.create({ model, messages: msgs, max_tokens: 12, temperature: 0,
                                                      stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.choices.length) { text += chunk.choices[0].delta.content ?? ""; fin = chunk.choices[0].finish_reason ?? fin; }
  if (chunk.usage) usage = chunk.usage;
}
if (text !== whole.choices[0].message.content) throw new Error(`stream ${JSON.stringify(text)} != ${JSON.stringify(whole.choices[0].message.content)}`);
if (fin !== whole.choices[0].finish_reason || usage.completion_tokens !== whole.usage.completion_tokens) throw new Error("finish/usage differ");
const models = await client.models.list();
if (models.data[0].id !== model) throw new Error("models");
try {
  await new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "owl-bad", maxRetries: 0 }).chat.completions.create({ model, messages: msgs });
  throw new Error("no 401");
} catch (e) { if (!(e instanceof OpenAI.AuthenticationError)) throw e; }
console.log("openai client ok");
EOF
    check "openai npm client: chat whole and streamed agree, models, 401 as AuthenticationError" \
        timeout 30 node "$TMP/npm/client.mjs" "$PORT" "$K1" stories260K
else
    echo "skip: openai npm client (npm or its registry not reachable)"
fi

kill -TERM "$SPID"
wait_exit "$SPID" 10
check "SIGTERM on an idle server: exit 0" test $? -eq 0
check "audit log verifies" "$OWL" audit verify "$AUD"
check "audit log has key ids, never keys" bash -c "grep -q '\"key_id\":1,' '$AUD' && ! grep -q '${K1:4}' '$AUD' && grep -q '\"model_sha256\":\"[0-9a-f]\{64\}\"' '$AUD'"
sed '3s/"status":[0-9]*/"status":299/' "$AUD" >"$TMP/edited.log"
"$OWL" audit verify "$TMP/edited.log" >/dev/null 2>"$TMP/verify.err"
rc=$?
check "edited audit line: verify fails naming line 3" bash -c "[[ $rc == 1 ]] && grep -q 'line 3:' '$TMP/verify.err'"
sed '2d' "$AUD" >"$TMP/cut.log"
"$OWL" audit verify "$TMP/cut.log" >/dev/null 2>"$TMP/verify.err"
check "removed audit line: verify names line 2" bash -c "grep -q 'line 2:' '$TMP/verify.err'"

# ---- server 2: slow steps (test hook), one slot, no queue ----
export OWL_SERVE_TEST_STEP_DELAY_MS=20
AUD2=$TMP/audit2.log
start_server s2 --no-auth --audit "$AUD2" --audit-content -c 512 --slots 1 --queue 0 --conn-timeout 1
unset OWL_SERVE_TEST_STEP_DELAY_MS
check "--no-auth prints a warning" grep -q WARNING "$TMP/s2.err"
LONG='{"model":"stories260K","prompt":"Once upon a time","max_tokens":400,"temperature":0,"stream":true}'
curl -s -N --max-time 1 -d "$LONG" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/cut.sse" 2>/dev/null
a=
for _ in $(seq 1 60); do # 3 s; the request alone would run 8 s
    a=$(metric owl_slots_active)
    [[ $a == 0 ]] && break
    sleep 0.05
done
check "client disconnect mid-stream frees the slot" bash -c "[[ '$a' == 0 ]] && grep -q '^data: ' '$TMP/cut.sse'"

# slow client: a request whose headers never end is closed after --conn-timeout
t0=$(date +%s%N)
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\n' >&3; cat <&3 >/dev/null"
t1=$(date +%s%N)
check "slow-loris: a stalled request is dropped after --conn-timeout 1 s" test $(((t1 - t0) / 1000000)) -lt 5000

# queue full: one long request holds the only slot
curl -s --max-time 20 -d '{"model":"stories260K","prompt":"Once","max_tokens":150,"temperature":0}' \
    "http://127.0.0.1:$PORT/v1/completions" >"$TMP/long.json" &
CPID=$!
for _ in $(seq 1 150); do
    [[ $(metric owl_slots_active) == 1 ]] && break
    sleep 0.02
done
s=$(req "$TMP/q" POST /v1/completions "" '{"model":"stories260K","prompt":"Hi","max_tokens":2}')
errcheck "queue full: 429" 429 "$s" "$TMP/q" queue_full
check "queue full carries Retry-After" grep -qi '^Retry-After: ' "$TMP/q.h"
# SIGTERM while that request generates: it completes, the log verifies
kill -TERM "$SPID"
sleep 0.3
h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$PORT/health")
check "after SIGTERM no new connection is accepted while the request finishes" bash -c "[[ '$h' == 000 ]] && kill -0 $SPID"
wait "$CPID"
wait_exit "$SPID" 20
rc=$?
check "SIGTERM during generation: exit 0" test $rc -eq 0
check "SIGTERM during generation: the request completed" bash -c \
    "[[ \$(jget '$TMP/long.json' '(j[\"usage\"][\"completion_tokens\"], j[\"choices\"][0][\"finish_reason\"])') == \"(150, 'length')\" ]]"
check "after SIGTERM the audit log verifies" "$OWL" audit verify "$AUD2"
check "the audit log has the disconnect (499) and the finished request with its text" bash -c \
    "grep -q '\"status\":499' '$AUD2' && tail -1 '$AUD2' | grep -q '\"status\":200' && tail -1 '$AUD2' | grep -q '\"completion\":\"'"

# per-request time limit
export OWL_SERVE_TEST_STEP_DELAY_MS=20
start_server s3 --no-auth --timeout 1 -c 512
unset OWL_SERVE_TEST_STEP_DELAY_MS
t0=$(date +%s%N)
s=$(req "$TMP/to" POST /v1/completions "" '{"model":"stories260K","prompt":"Once","max_tokens":400}')
t1=$(date +%s%N)
errcheck "--timeout 1: a longer generation ends with 504" 504 "$s" "$TMP/to" timeout
check "--timeout 1: answered within 4 s (the generation alone takes 8 s)" test $(((t1 - t0) / 1000000)) -lt 4000
kill -TERM "$SPID"
wait_exit "$SPID" 10

check "no sanitizer report from the servers" bash -c "! grep -l 'Sanitizer\|runtime error' '$TMP'/s*.err"
echo "e2e_serve: $pass passed, $failn failed"
[[ $failn == 0 ]]
