#!/usr/bin/env bash
# owl finetune end to end on a small random model (make_model.py):
#  - resume: a run stopped after k steps (--stop-after) and continued with
#    --resume gives the same adapter and checkpoint bytes as an
#    uninterrupted run with the same seed and threads;
#  - Ctrl-C (SIGINT) writes a checkpoint and exits 130; --resume finishes;
#  - NaN loss (a huge --lr) stops with a clear message, status 1, and the
#    last good checkpoint kept;
#  - data: JSONL chat, prompt/completion; a malformed line reported with its
#    line number (--on-bad-line skip: warning, training goes on; stop: error);
#    an example longer than --ctx truncated with a warning or refused
#    (--on-long stop);
#  - the output directory is refused without --force; --gguf writes the
#    GGUF adapter; a resume with other settings or a damaged checkpoint is
#    refused naming the reason; usage errors exit 2;
#  - owl run --lora uses the adapter (PEFT directory and GGUF: the same text).
set -uo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}"
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:-$(dirname "$0")/..}
TMP=${OWL_TMP:-/tmp}/e2e_finetune
rm -rf "$TMP"
mkdir -p "$TMP"
source "$(dirname "$0")/shell_lib.sh"
same_files() { # NAME DIR1 DIR2 FILE...
    local name=$1 a=$2 b=$3
    shift 3
    for f in "$@"; do
        if ! cmp -s "$a/$f" "$b/$f"; then fail "$name: $f differs between $a and $b"; return; fi
    done
    echo "ok: $name: $* identical"
}

"$PY" "$SRC/tests/reference/make_model.py" --out "$TMP/base" --dim 48 --layers 2 --heads 4 --kv-heads 2 --ffn 96 \
    --vocab 300 --ctx 128 --no-ref --special '<|im_start|>' --special '<|im_end|>' || { echo "no model"; exit 1; }
M=$TMP/base.gguf
"$PY" - "$TMP" <<'EOF'
import json, random, sys
d = sys.argv[1]
random.seed(4)
words = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
open(d + "/text.txt", "w").write("\n".join(" ".join(random.choice(words) for _ in range(8)) for _ in range(24)) + "\n")
with open(d + "/chat.jsonl", "w") as f:
    for i in range(12):
        f.write(json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": "say %s" % words[i % 6]},
                                         {"role": "assistant", "content": words[i % 6] * 2}]}) + "\n")
with open(d + "/pc.jsonl", "w") as f:
    for i in range(12):
        f.write(json.dumps({"prompt": "q%d:" % i, "completion": " " + words[i % 6]}) + "\n")
lines = open(d + "/chat.jsonl").read().splitlines()
bad = lines[:2] + ['{"messages": [{"role": "user", "content": "x"}'] + lines[2:4] + ['{"prompt": 5, "completion": "x"}'] + lines[4:]
open(d + "/bad.jsonl", "w").write("\n".join(bad) + "\n")
open(d + "/long.jsonl", "w").write(json.dumps({"prompt": "p", "completion": "word " * 200}) + "\n" + lines[0] + "\n")
EOF
# Threads that sleep at barriers: a busy CI machine (other tests at once) makes
# spinning OpenMP threads of the many tiny products here 20x slower.
export OMP_WAIT_POLICY=passive
COMMON=(--rank 4 --alpha 8 --lr 2e-3 --ctx 32 --batch 2 --seed 9 -t 1 -q)

# usage errors
owl_fails usage_no_data 2 "no training data" finetune "$M" -o "$TMP/x"
owl_fails usage_no_out 2 "no output directory" finetune "$M" --data "$TMP/text.txt"
owl_fails usage_targets 2 "unknown projection 'qq'" finetune "$M" --data "$TMP/text.txt" -o "$TMP/x" --targets q,qq
owl_fails usage_lr 2 "lr" finetune "$M" --data "$TMP/text.txt" -o "$TMP/x" --lr abc
owl_fails usage_rank 2 "rank" finetune "$M" --data "$TMP/text.txt" -o "$TMP/x" --rank 0
owl_fails usage_on_bad 2 "on-bad-line" finetune "$M" --data "$TMP/text.txt" -o "$TMP/x" --on-bad-line maybe
owl_fails missing_data 1 "cannot open training data" finetune "$M" --data "$TMP/none.txt" -o "$TMP/x"
if "$OWL_BIN" finetune --help | grep -q -- "--resume"; then echo "ok: help"; else fail "help lacks --resume"; fi

# 1. resume is exact: 12 steps at once vs 5 + 7
owl_ok full finetune "$M" --data "$TMP/text.txt" --epochs 2 -o "$TMP/full" "${COMMON[@]}" -t 2 --gguf
owl_ok part1 finetune "$M" --data "$TMP/text.txt" --epochs 2 -o "$TMP/part" "${COMMON[@]}" -t 2 --gguf --stop-after 5
grep -q "stopped after step 5" "$TMP/part1.err" || fail "part1: no stop message"
owl_ok part2 finetune "$M" --data "$TMP/text.txt" --epochs 2 -o "$TMP/part" "${COMMON[@]}" -t 2 --gguf --resume
same_files resume "$TMP/full" "$TMP/part" adapter_model.safetensors adapter_config.json adapter.gguf checkpoint.owlt
[ -s "$TMP/full/adapter.gguf" ] && echo "ok: --gguf" || fail "--gguf: no adapter.gguf"
# owl run uses the adapter: the PEFT directory and the GGUF form give the same greedy text, unlike the base
owl_ok run_peft run "$M" --lora "$TMP/part" -p "alpha beta" -n 12 --temp 0 --ids
owl_ok run_gguf run "$M" --lora "$TMP/part/adapter.gguf" -p "alpha beta" -n 12 --temp 0 --ids
owl_ok run_base run "$M" -p "alpha beta" -n 12 --temp 0 --ids
if [ -s "$TMP/run_peft.out" ] && cmp -s "$TMP/run_peft.out" "$TMP/run_gguf.out" && \
    ! cmp -s "$TMP/run_peft.out" "$TMP/run_base.out"; then
    echo "ok: owl run --lora: PEFT = GGUF != base"
else
    fail "owl run --lora: peft '$(cat "$TMP/run_peft.out")' gguf '$(cat "$TMP/run_gguf.out")' base '$(cat "$TMP/run_base.out")'"
fi

# 2. the output directory exists
owl_fails exists 1 "exists \(--force" finetune "$M" --data "$TMP/text.txt" -o "$TMP/full" "${COMMON[@]}"
owl_ok force finetune "$M" --data "$TMP/text.txt" -o "$TMP/full" "${COMMON[@]}" --force
# resume with other settings or a damaged checkpoint
owl_fails resume_lr 1 "made with --lr" finetune "$M" --data "$TMP/text.txt" --epochs 2 -o "$TMP/part" \
    "${COMMON[@]}" --resume --lr 1e-3
owl_fails resume_data 1 "other training data" finetune "$M" --data "$TMP/pc.jsonl" --epochs 2 -o "$TMP/part" \
    "${COMMON[@]}" --resume
cp -r "$TMP/part" "$TMP/damaged"
printf '\x01' | dd of="$TMP/damaged/checkpoint.owlt" bs=1 seek=200 conv=notrunc status=none
owl_fails resume_damaged 1 "checksum" finetune "$M" --data "$TMP/text.txt" --epochs 2 -o "$TMP/damaged" \
    "${COMMON[@]}" --resume
owl_fails resume_none 1 "no checkpoint" finetune "$M" --data "$TMP/text.txt" -o "$TMP/nothing" "${COMMON[@]}" --resume

# 3. NaN: a huge learning rate; checkpoints every step, the last good one kept
owl_fails nan 1 "loss is NaN.*checkpoint of step [0-9]+ are kept" finetune "$M" --data "$TMP/text.txt" \
    -o "$TMP/nan" "${COMMON[@]}" --lr 1e30 --save-every 1 --epochs 3
if [ -s "$TMP/nan/checkpoint.owlt" ] && [ -s "$TMP/nan/adapter_model.safetensors" ]; then
    echo "ok: nan: checkpoint kept"
else
    fail "nan: no checkpoint kept"
fi

# 4. data forms and bad lines
CHAT=(--rank 4 --alpha 8 --lr 2e-3 --ctx 128 --batch 2 --seed 9 -t 1 -q)
owl_ok chat finetune "$M" --data "$TMP/chat.jsonl" -o "$TMP/chat" "${CHAT[@]}" --epochs 2
owl_ok pc finetune "$M" --data "$TMP/pc.jsonl" --val "$TMP/pc.jsonl" -o "$TMP/pc" --rank 4 --ctx 32 -t 1
grep -q "validation loss" "$TMP/pc.err" && echo "ok: validation loss printed" || fail "pc: no validation loss"
owl_ok bad_skip finetune "$M" --data "$TMP/bad.jsonl" -o "$TMP/bad" "${CHAT[@]}"
grep -q "bad.jsonl:3: not valid JSON" "$TMP/bad_skip.err" && grep -q 'bad.jsonl:6: "prompt" must be a string' \
    "$TMP/bad_skip.err" && echo "ok: bad lines reported" || fail "bad_skip: $(cat "$TMP/bad_skip.err")"
owl_fails bad_stop 1 "bad.jsonl:3: not valid JSON" finetune "$M" --data "$TMP/bad.jsonl" -o "$TMP/bad2" \
    "${CHAT[@]}" --on-bad-line stop
[ ! -e "$TMP/bad2" ] && echo "ok: bad_stop: nothing written" || fail "bad_stop: output written"
owl_ok long_trunc finetune "$M" --data "$TMP/long.jsonl" -o "$TMP/long" "${COMMON[@]}"
grep -q "long.jsonl:1: [0-9]* tokens, truncated to the context of 32" "$TMP/long_trunc.err" && echo "ok: truncated" \
    || fail "long_trunc: $(cat "$TMP/long_trunc.err")"
owl_fails long_stop 1 "long.jsonl:1: [0-9]+ tokens, longer than the context of 32" finetune "$M" \
    --data "$TMP/long.jsonl" -o "$TMP/long2" "${COMMON[@]}" --on-long stop
printf 'garbage\n{"text": 3}\n' > "$TMP/allbad.jsonl"
owl_fails all_bad 1 "no training sequences" finetune "$M" --data "$TMP/allbad.jsonl" -o "$TMP/allbad" "${COMMON[@]}"

# 5. Ctrl-C: a long run interrupted after a few steps saves a checkpoint and exits 130
"$OWL_BIN" finetune "$M" --data "$TMP/text.txt" -o "$TMP/int" --rank 4 --ctx 32 --batch 1 --epochs 400 --seed 9 \
    -t 1 > "$TMP/int.out" 2> "$TMP/int.err" &
pid=$!
for _ in $(seq 1 300); do
    grep -q "^step 3/" "$TMP/int.err" 2> /dev/null && break
    sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
if [ $rc = 130 ] && grep -q "interrupted after step" "$TMP/int.err" && [ -s "$TMP/int/checkpoint.owlt" ]; then
    echo "ok: SIGINT: status 130, checkpoint written"
    owl_ok int_resume finetune "$M" --data "$TMP/text.txt" -o "$TMP/int" --rank 4 --ctx 32 --batch 1 --epochs 400 \
        --seed 9 -t 1 -q --resume --stop-after $(($(sed -n 's/.*interrupted after step \([0-9]*\).*/\1/p' "$TMP/int.err") + 2))
else
    fail "SIGINT: status $rc: $(tail -n 2 "$TMP/int.err")"
fi

if [ $failures != 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all ok"
