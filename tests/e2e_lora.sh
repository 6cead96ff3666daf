#!/usr/bin/env bash
# LoRA on the command line, with a random base and random adapters
# (tests/reference/make_model.py, make_lora.py):
#  - owl run --lora: every greedy token is the argmax of the float64
#    reference (llama_ref.py --lora, W + s B A) at its position;
#  - --lora PATH:0 gives the base's tokens; the GGUF form gives the PEFT
#    form's tokens; owl lora merge BASE AD:0.5 gives owl run --lora AD:0.5's
#    tokens; owl lora convert PEFT -> GGUF -> PEFT round trip;
#  - bad flags (exit 2) and bad adapters (exit 1, message naming the file or
#    tensor, nothing generated).
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_SOURCE_DIR:?set OWL_SOURCE_DIR}"
PY=${OWL_PYTHON:-/usr/bin/python3}
REF=$OWL_SOURCE_DIR/tests/reference
TMP=${OWL_TMP:-/tmp}/e2e_lora
rm -rf "$TMP"
mkdir -p "$TMP"

source "$(dirname "$0")/shell_lib.sh"

# owl_ok NAME ARGS...: runs owl, stdout to $TMP/NAME.out, stderr to .err
owl_ok() {
    local name=$1
    shift
    if ! "$OWL_BIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"; then
        fail "$name: owl $* failed: $(tail -n 3 "$TMP/$name.err")"
        return 1
    fi
}

# owl_fails NAME STATUS PATTERN ARGS...: owl must exit with STATUS, print
# PATTERN on stderr and nothing on stdout
owl_fails() {
    local name=$1 want=$2 pat=$3 rc=0
    shift 3
    "$OWL_BIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" || rc=$?
    if [[ $rc != "$want" ]]; then
        fail "$name: owl $* exited $rc, want $want: $(head -c 300 "$TMP/$name.err")"
    elif ! grep -q -- "$pat" "$TMP/$name.err"; then
        fail "$name: stderr lacks '$pat': $(head -c 300 "$TMP/$name.err")"
    elif [[ -s "$TMP/$name.out" ]]; then
        fail "$name: printed something on stdout: $(head -c 200 "$TMP/$name.out")"
    else
        echo "ok: $name"
    fi
}

same() {
    if cmp -s "$1" "$2"; then echo "ok: $3"; else fail "$3: $(cat "$1") vs $(cat "$2")"; fi
}

B=$TMP/base
"$PY" "$REF/make_model.py" --out "$B" --dim 64 --heads 4 --kv-heads 2 --layers 2 --ffn 96 --no-ref
"$PY" "$REF/make_lora.py" --base "$B.gguf" --out "$TMP/ad" --gguf "$TMP/ad.gguf" --rank 4 --alpha 8 --lm-head --seed 5
"$PY" "$REF/make_lora.py" --base "$B.gguf" --out "$TMP/nan" --rank 2 --break nan

GEN=(run -t 1 "$B.gguf" -p "hello world" --temp 0 -n 12 --ids -q)
owl_ok base "${GEN[@]}"
owl_ok lora "${GEN[@]}" --lora "$TMP/ad"
owl_ok lora0 "${GEN[@]}" --lora "$TMP/ad:0"
owl_ok lorag "${GEN[@]}" --lora "$TMP/ad.gguf:1.0"
owl_ok lora_half "${GEN[@]}" --lora "$TMP/ad:0.5"
same "$TMP/lora0.out" "$TMP/base.out" "--lora AD:0 gives the base's tokens"
same "$TMP/lorag.out" "$TMP/lora.out" "GGUF form gives the PEFT form's tokens"
if cmp -s "$TMP/lora.out" "$TMP/base.out"; then fail "the adapter does not change the greedy tokens"; fi

# every generated token = argmax of the reference logits before it
if owl_ok prompt tokenize "$B.gguf" "hello world" --ids; then
    read -r -a p_ids < "$TMP/prompt.out"
    read -r -a g_ids < "$TMP/lora.out"
    echo "${p_ids[*]} ${g_ids[*]}" > "$TMP/seq.txt"
    "$PY" "$REF/llama_ref.py" "$B.gguf" "$TMP/seq.txt" "$TMP/seq.f64" --lora "$TMP/ad"
    if "$PY" - "$TMP/seq.f64" "${#p_ids[@]}" "${g_ids[*]}" <<'EOF'
import sys
import numpy as np
lg = np.fromfile(sys.argv[1], "<f8")
n_p = int(sys.argv[2])
g = [int(t) for t in sys.argv[3].split()]
lg = lg.reshape(n_p + len(g), -1)
for i, t in enumerate(g):
    row = lg[n_p - 1 + i]
    top = np.sort(row)[-2:]
    if int(np.argmax(row)) != t and top[1] - top[0] > 1e-4 * abs(top[1]):
        sys.exit("token %d: owl %d, reference argmax %d" % (i, t, int(np.argmax(row))))
EOF
    then echo "ok: owl run --lora greedy tokens = reference argmax"; else fail "owl run --lora vs reference"; fi
fi

# merge, convert
if owl_ok merge lora merge "$B.gguf" "$TMP/ad:0.5" -o "$TMP/merged.gguf" --type f32; then
    owl_ok merged run -t 1 "$TMP/merged.gguf" -p "hello world" --temp 0 -n 12 --ids -q &&
        same "$TMP/merged.out" "$TMP/lora_half.out" "merged model gives owl run --lora AD:0.5's tokens"
    # the merged file gets its manifest (digest, source): owl verify passes, a flipped byte fails
    owl_ok merged_verify verify "$TMP/merged.gguf"
    if grep -q "owl lora merge" "$TMP/owl.manifest.json"; then echo "ok: merge recorded in the manifest"
    else fail "owl lora merge wrote no manifest entry"; fi
fi
if owl_ok conv1 lora convert "$TMP/ad" --base "$B.gguf" -o "$TMP/conv.gguf" &&
    owl_ok conv2 lora convert "$TMP/conv.gguf" --base "$B.gguf" -o "$TMP/conv_peft"; then
    owl_ok conv_run "${GEN[@]}" --lora "$TMP/conv_peft" --lora "$TMP/conv.gguf:0"
    same "$TMP/conv_run.out" "$TMP/lora.out" "PEFT -> GGUF -> PEFT round trip gives the same tokens"
fi

# bad flags and adapters
owl_fails no_sub 2 "no subcommand" lora
owl_fails bad_sub 2 "unknown subcommand 'frob'" lora frob
owl_fails merge_no_ad 2 "no adapter given" lora merge "$B.gguf" -o "$TMP/x.gguf"
owl_fails merge_no_out 2 "no output given" lora merge "$B.gguf" "$TMP/ad"
owl_fails merge_bad_type 2 "--type 'Q9' is not a tensor type" lora merge "$B.gguf" "$TMP/ad" -o "$TMP/x.gguf" --type Q9
owl_fails convert_no_base 2 "base model is needed" lora convert "$TMP/ad" -o "$TMP/x.gguf"
owl_fails convert_type 2 "f32, f16 or bf16" lora convert "$TMP/ad" --base "$B.gguf" -o "$TMP/x.gguf" --type q4_0
owl_fails convert_two 2 "convert takes one adapter" lora convert "$TMP/ad" "$TMP/ad" --base "$B.gguf" -o "$TMP/x"
owl_fails lora_flag 2 "unknown flag '--frob'" lora merge "$B.gguf" "$TMP/ad" --frob -o "$TMP/x.gguf"
owl_fails run_scale 2 "the scale 'abc' is not a number" "${GEN[@]}" --lora "$TMP/ad:abc"
owl_fails run_scale_big 2 "from -1000 to 1000" "${GEN[@]}" --lora "$TMP/ad:1e9"
owl_fails run_no_value 2 "lora" "${GEN[@]}" --lora
owl_fails run_nine 2 "at most 8 adapters" "${GEN[@]}" --lora a --lora a --lora a --lora a --lora a --lora a \
    --lora a --lora a --lora a
owl_fails run_missing 1 "nothere" "${GEN[@]}" --lora "$TMP/nothere"
owl_fails run_nan 1 "NaN" "${GEN[@]}" --lora "$TMP/nan"
owl_fails chat_missing 1 "nothere" chat "$B.gguf" --lora "$TMP/nothere"
owl_fails merge_nan 1 "NaN" lora merge "$B.gguf" "$TMP/nan" -o "$TMP/x.gguf"
[[ -e "$TMP/x.gguf" ]] && fail "a failed merge left $TMP/x.gguf"
owl_fails bench_missing 1 "nothere" bench "$B.gguf" -p 0 -n 2 -r 1 --no-bandwidth --lora "$TMP/nothere"

if ((failures)); then
    echo "e2e_lora: $failures failed" >&2
    exit 1
fi
echo "e2e_lora: all passed"
