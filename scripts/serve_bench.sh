#!/usr/bin/env bash
# Continuous batching benchmark (not a test): starts `owl serve MODEL` on a
# loopback port with 8 slots and runs scripts/serve_load.py with 1 and with 8
# concurrent streaming clients (temperature 0), ROUNDS times each,
# alternating; prints each round's aggregate generated tokens/s and TTFT
# p50 / p99, then the medians.
#   scripts/serve_bench.sh MODEL [ROUNDS] [MAX_TOKENS] [THREADS]
set -eu
MODEL=${1:?usage: serve_bench.sh MODEL [ROUNDS] [MAX_TOKENS] [THREADS]}
ROUNDS=${2:-3}
MAXT=${3:-64}
THREADS=${4:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
OWL=${OWL_BIN:-$HERE/../build/owl}
PY=${PY:-/usr/bin/python3}
TMP=$(mktemp -d)
"$OWL" serve "$MODEL" --port 0 --no-auth --slots 8 -t "$THREADS" -c 512 --max-tokens-cap 4096 2>"$TMP/err" &
SPID=$!
trap 'kill $SPID 2>/dev/null; rm -rf "$TMP"' EXIT
PORT=
for _ in $(seq 1 600); do
    PORT=$(grep -o 'on http://127.0.0.1:[0-9]*' "$TMP/err" 2>/dev/null | sed 's/.*://') || true
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n $PORT ]] || { cat "$TMP/err"; exit 1; }
NAME=$(basename "$MODEL" .gguf)
PROMPTS=("Once upon a time" "The little dog" "In a small town" "She opened the door" "It was raining" "Tom had a red" "The king said" "A bird flew")
printf '%s\n' "${PROMPTS[@]}" >"$TMP/prompts"
# warm-up
"$PY" "$HERE/serve_load.py" --port "$PORT" --model "$NAME" --clients 8 --prompts-file "$TMP/prompts" --max-tokens 8 >/dev/null
for r in $(seq 1 "$ROUNDS"); do
    for c in 1 8; do
        "$PY" "$HERE/serve_load.py" --port "$PORT" --model "$NAME" --clients $c --prompts-file "$TMP/prompts" \
            --max-tokens "$MAXT" >"$TMP/r$c.$r"
        "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print("clients %d round %s: %.2f tok/s, %d tokens, ttft p50 %.3f s p99 %.3f s, errors %d" % (j["clients"], sys.argv[2], j["tokens_per_s"], j["completion_tokens"], j["ttft_p50_s"], j["ttft_p99_s"], j["errors"]))' "$TMP/r$c.$r" "$r"
    done
done
"$PY" - "$TMP" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for c in (1, 8):
    rs = [json.load(open("%s/r%d.%d" % (tmp, c, r))) for r in range(1, rounds + 1)]
    med[c] = statistics.median(r["tokens_per_s"] for r in rs)
    print("clients %d: median %.2f tok/s, ttft p50 median %.3f s, p99 median %.3f s" % (
        c, med[c], statistics.median(r["ttft_p50_s"] for r in rs), statistics.median(r["ttft_p99_s"] for r in rs)))
print("8 clients / 1 client: %.2fx" % (med[8] / med[1]))
PYEOF
