#!/usr/bin/env bash
# owl run, end to end on stories260K:
#  - greedy generation from BOS equals what llama2.c's run.c prints
#    (vectors/stories260K/greedy_n200.*, made by llama2.c itself), for the
#    llama2.c checkpoint and for the GGUF file (tokenizer inside), as text and
#    as token ids;
#  - a prompt: its echo plus the greedy continuation equals the same text;
#  - sampling: the same seed gives the same text, another seed another text,
#    top-k 1 equals greedy; -f FILE equals -p TEXT.
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
TMP=${OWL_TMP:-/tmp}/e2e_run
rm -rf "$TMP"
mkdir -p "$TMP"

TD=$OWL_TESTDATA
BIN=$TD/models/stories260K.bin
TOK=$TD/tokenizers/tinystories512/tok512.bin
GGUF=$TD/models/stories260K.gguf
WANT_TEXT=$TD/vectors/stories260K/greedy_n200.stdout.txt
WANT_IDS=$TD/vectors/stories260K/greedy_n200.ids.txt

source "$(dirname "$0")/shell_lib.sh"

# same FILE_GOT FILE_WANT WHAT
same() {
    if cmp -s "$1" "$2"; then
        echo "ok: $3"
    else
        fail "$3: output differs from $2"
        diff <(head -c 2000 "$2") <(head -c 2000 "$1") | head -20 >&2 || true
    fi
}


# Most runs use one thread (quicker on a busy 2-core machine); the first
# two use the default (all cores).
# 1. greedy from BOS, llama2.c checkpoint
if owl_ok bin_text run "$BIN" --tokenizer "$TOK" -p "" --temp 0 -n 200; then
    same "$TMP/bin_text.out" "$WANT_TEXT" "llama2.c checkpoint, greedy text"
    grep -q "tok/s" "$TMP/bin_text.err" || fail "no timings on stderr: $(cat "$TMP/bin_text.err")"
fi
if owl_ok bin_ids run -t 1 "$BIN" --tokenizer "$TOK" -p "" --temp 0 -n 200 --ids; then
    same "$TMP/bin_ids.out" "$WANT_IDS" "llama2.c checkpoint, greedy ids"
fi
# tokenizer.bin found beside the checkpoint
mkdir -p "$TMP/beside"
ln -sf "$BIN" "$TMP/beside/model.bin"
ln -sf "$TOK" "$TMP/beside/tokenizer.bin"
if owl_ok beside_text run -t 1 "$TMP/beside/model.bin" --temp 0 -n 200; then
    same "$TMP/beside_text.out" "$WANT_TEXT" "llama2.c checkpoint, tokenizer.bin beside it"
fi

# 2. the same model as GGUF
if owl_ok gguf_text run "$GGUF" -p "" --temp 0 -n 200; then
    same "$TMP/gguf_text.out" "$WANT_TEXT" "GGUF, greedy text"
fi
if owl_ok gguf_ids run -t 1 "$GGUF" --temp 0 -n 200 --ids; then
    same "$TMP/gguf_ids.out" "$WANT_IDS" "GGUF, greedy ids (no -p: empty prompt)"
fi

# 3. a prompt that is the start of the greedy story: the echo plus the
#    continuation must be the same text (the ids of the prompt must be the
#    first ids of the story for this to hold, so check that too).
read -r -a want_ids < "$WANT_IDS"
if owl_ok prompt_ids tokenize "$GGUF" "Once upon a time" --ids; then
    want="1 ${want_ids[*]:0:4}"
    got=$(cat "$TMP/prompt_ids.out")
    if [[ $got == "$want" ]]; then
        echo "ok: 'Once upon a time' is BOS + the story's first 4 ids"
        if owl_ok prompt_text run -t 1 "$GGUF" -p "Once upon a time" --temp 0 -n 196; then
            same "$TMP/prompt_text.out" "$WANT_TEXT" "prompt echo + greedy continuation"
        fi
        printf 'Once upon a time' > "$TMP/prompt.txt"
        if owl_ok prompt_file run -t 1 "$BIN" --tokenizer "$TOK" -f "$TMP/prompt.txt" --temp 0 -n 196; then
            same "$TMP/prompt_file.out" "$WANT_TEXT" "prompt from -f FILE"
        fi
    else
        fail "tokenize 'Once upon a time': got '$got', want '$want'"
    fi
fi

# 4. sampling
owl_ok s42a run -t 1 "$GGUF" -p "Once upon a time" --temp 0.8 --seed 42 -n 100 || true
owl_ok s42b run -t 1 "$GGUF" -p "Once upon a time" --temp 0.8 --seed 42 -n 100 || true
owl_ok s43 run -t 1 "$GGUF" -p "Once upon a time" --temp 0.8 --seed 43 -n 100 || true
same "$TMP/s42a.out" "$TMP/s42b.out" "same seed, same text"
if cmp -s "$TMP/s42a.out" "$TMP/s43.out"; then fail "seeds 42 and 43 gave the same 100 tokens"; else echo "ok: another seed, another text"; fi
if [[ $(wc -c < "$TMP/s42a.out") -lt 100 ]]; then fail "sampled text is too short: $(cat "$TMP/s42a.out")"; fi
owl_ok seedless run -t 1 "$GGUF" -p "Once" -n 5 || true
grep -q "seed" "$TMP/seedless.err" || fail "no seed printed to stderr without --seed: $(cat "$TMP/seedless.err")"
if owl_ok topk1 run -t 1 "$GGUF" -p "" --temp 0.8 --top-k 1 --seed 7 -n 200; then
    same "$TMP/topk1.out" "$WANT_TEXT" "top-k 1 is greedy"
fi
# all filters and the penalty at once still give a valid run
owl_ok filters run -t 1 "$BIN" --tokenizer "$TOK" -p "Lily" --temp 1.2 --top-k 0 --top-p 0.5 --min-p 0.1 \
    --repeat-penalty 1.3 --repeat-last-n 16 --seed 1 -n 50 -t 1 || true

# 5. stops: -n 0 prints the prompt only; a context of 20 stops at 20 positions
if owl_ok n0 run -t 1 "$GGUF" -p "Once upon a time" -n 0; then
    printf 'Once upon a time\n' > "$TMP/n0.want"
    same "$TMP/n0.out" "$TMP/n0.want" "-n 0 echoes the prompt only"
fi
if owl_ok ctx20 run -t 1 "$GGUF" --temp 0 -c 20 --ids; then
    n=$(wc -w < "$TMP/ctx20.out")
    want20=$(printf '%s ' "${want_ids[@]:0:20}")
    if [[ $n -eq 20 && "$(cat "$TMP/ctx20.out") " == "$want20" ]]; then
        echo "ok: -c 20 stops after 20 tokens"
    else
        fail "-c 20: got $n ids: $(cat "$TMP/ctx20.out")"
    fi
    grep -q "context" "$TMP/ctx20.err" || fail "-c 20: no note that the context is full"
fi

# 6. a quantized Llama 2-vocabulary model: the prompt comes back first
if owl_ok wp run -t 1 "$OWL_TESTDATA/models/wp/wp-Q4_0.gguf" -p "Prince Andrew" --temp 0 -n 16; then
    if [[ $(head -c 13 "$TMP/wp.out") == "Prince Andrew" && $(wc -c < "$TMP/wp.out") -gt 20 ]]; then
        echo "ok: wp-Q4_0 generates after its prompt: $(head -n 1 "$TMP/wp.out")"
    else
        fail "wp-Q4_0: unexpected output: $(cat "$TMP/wp.out")"
    fi
fi

if ((failures)); then
    echo "e2e_run: $failures failed" >&2
    exit 1
fi
echo "e2e_run: all passed"
