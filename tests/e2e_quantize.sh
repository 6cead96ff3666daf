#!/usr/bin/env bash
# owl quantize and owl perplexity, end to end on the wp model:
#  - the F32 original (owl convert of models/wp/hf) quantized to Q8_0, Q4_0
#    and Q4_K_M gives every tensor the type llama.cpp gave it in
#    wp-<TYPE>.gguf (read by tests/reference/gguf_types.py), with llama.cpp's
#    general.file_type and quantization_version 2;
#  - perplexity on the validation text (bytes from 2882089, models/wp/README.md)
#    is finite and sane; Q8_0 against the F32 original: top-1 agreement
#    >= 99 %, small KL;
#  - the quality criterion: owl's own quantization's mean KL to the F32
#    original is at most 1.05x that of llama.cpp's file of the same type, on
#    the same windows (Q8_0, Q4_0, Q4_K_M);
#  - errors: unknown type, already quantized input, unwritable output, disk
#    full (ulimit -f), missing model / text, text shorter than two windows,
#    --ctx above the model's context: clear message, non-zero status, no
#    file left behind.
set -uo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:-$(dirname "$0")/..}
TMP=${OWL_TMP:-/tmp}/e2e_quantize
rm -rf "$TMP"
mkdir -p "$TMP/out"
WP=$OWL_TESTDATA/models/wp
source "$(dirname "$0")/shell_lib.sh"
# owl_fails NAME WANT_STATUS PATTERN ARGS...: owl must exit with WANT_STATUS
# and print PATTERN (grep -E) on stderr
nothing_left() { # DIR WHAT
    if [ -n "$(ls -A "$1")" ]; then fail "$2: left behind: $(ls -A "$1")"; else echo "ok: $2: nothing left behind"; fi
}
# value FILE KEY: the number after "KEY = " in an owl perplexity output
value() { sed -n "s/^$2 = \([0-9.eE+-]*\).*/\1/p" "$1"; }

tail -c +2882090 "$OWL_TESTDATA/text/war-and-peace.txt" > "$TMP/valid.txt"
head -c 1500 "$TMP/valid.txt" > "$TMP/short.txt"

F32=$TMP/wp-F32.gguf
owl_ok convert convert "$WP/hf" -o "$F32" --type f32 || { echo "no F32 original"; exit 1; }

# 1. per-tensor types of each mix equal llama.cpp's
for m in Q8_0 Q4_0 Q4_K_M; do
    owl_ok "q_$m" quantize "$F32" "$TMP/owl-$m.gguf" --type "$m" --threads 2 || continue
    "$PY" "$SRC/tests/reference/gguf_types.py" "$TMP/owl-$m.gguf" | sort > "$TMP/types-owl-$m.txt"
    "$PY" "$SRC/tests/reference/gguf_types.py" "$WP/wp-$m.gguf" | sort > "$TMP/types-wp-$m.txt"
    if cmp -s "$TMP/types-owl-$m.txt" "$TMP/types-wp-$m.txt"; then
        echo "ok: $m: tensor types, file_type and quantization_version equal llama.cpp's"
    else
        fail "$m: types differ from llama.cpp's: $(diff "$TMP/types-owl-$m.txt" "$TMP/types-wp-$m.txt" | head -5)"
    fi
    grep -q "$m" "$TMP/q_$m.err" || fail "$m: no summary: $(cat "$TMP/q_$m.err")"
done

# --pure: every matrix Q4_K (the tied output too), file type still Q4_K_M's
if owl_ok q_pure quantize "$F32" "$TMP/pure.gguf" --type Q4_K_M --pure; then
    t=$("$PY" "$SRC/tests/reference/gguf_types.py" "$TMP/pure.gguf" | grep -v '^#' | awk '{print $2}' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
    ft=$("$PY" "$SRC/tests/reference/gguf_types.py" "$TMP/pure.gguf" | grep '^#general.file_type')
    [ "$t" = "0:9 12:29 " ] && [ "$ft" = "#general.file_type 15" ] && echo "ok: --pure: 29 x Q4_K, 9 x F32" ||
        fail "--pure: types '$t', '$ft'"
    rm -f "$TMP/pure.gguf"
fi
# a Hugging Face directory in: the same file as from its F32 conversion
if owl_ok q_hf quantize "$WP/hf" "$TMP/hf-Q4_K_M.gguf" --type Q4_K_M; then
    cmp -s "$TMP/hf-Q4_K_M.gguf" "$TMP/owl-Q4_K_M.gguf" && echo "ok: HF directory in: same file" ||
        fail "quantizing the HF directory differs from quantizing its F32 conversion"
    [ -z "$(ls "$TMP" | grep '\.f32\.')" ] || fail "HF directory in: temporary F32 file left: $(ls "$TMP")"
fi

# 2. perplexity and KL. Windows of 128 tokens, 4 of them: 252 scored tokens.
PPL_ARGS=(-f "$TMP/valid.txt" --ctx 128 --chunks 4 -t 2)
declare -A KL
for who in owl wp; do
    for m in Q8_0 Q4_0 Q4_K_M; do
        f=$TMP/owl-$m.gguf
        [ $who = wp ] && f=$WP/wp-$m.gguf
        owl_ok "kl_${who}_$m" perplexity "$f" "${PPL_ARGS[@]}" --kl-base "$F32" || continue
        KL[$who-$m]=$(value "$TMP/kl_${who}_$m.out" "mean KL")
        echo "$who $m: KL ${KL[$who-$m]} top-1 $(value "$TMP/kl_${who}_$m.out" "top-1 agreement") %" \
            "PPL $(value "$TMP/kl_${who}_$m.out" PPL) base $(value "$TMP/kl_${who}_$m.out" "base PPL")"
    done
done
f=$TMP/kl_wp_Q8_0.out
p=$(value "$f" PPL)
grep -Eq '^\[1\][0-9.]+,\[2\][0-9.]+,.*\[4\][0-9.]+$' "$f" || fail "no running estimate per chunk: $(cat "$f")"
grep -q "scored tokens: 252 " "$f" || fail "scored tokens: $(cat "$f")"
# the model's validation perplexity is 113 over whole windows (README); half windows score lower
awk -v p="$p" 'BEGIN { exit !(p > 30 && p < 300) }' && echo "ok: Q8_0 PPL $p" || fail "Q8_0 PPL '$p' not sane"
a=$(value "$TMP/kl_wp_Q8_0.out" "top-1 agreement")
awk -v a="$a" -v k="${KL[wp-Q8_0]:-x}" 'BEGIN { exit !(a >= 99 && k > 0 && k < 0.001) }' \
    && echo "ok: Q8_0 vs F32: top-1 $a %, KL ${KL[wp-Q8_0]:-}" || fail "Q8_0 vs F32: top-1 '$a' %, KL '${KL[wp-Q8_0]:-}'"
# the base as the Hugging Face directory itself: the same KL
if owl_ok kl_hf perplexity "$WP/wp-Q8_0.gguf" "${PPL_ARGS[@]}" --kl-base "$WP/hf"; then
    k=$(value "$TMP/kl_hf.out" "mean KL")
    awk -v k="$k" -v w="${KL[wp-Q8_0]:-x}" 'BEGIN { d = k - w; if (d < 0) d = -d; exit !(w > 0 && d <= 0.02 * w) }' \
        && echo "ok: base from the HF directory: KL $k" || fail "base from the HF directory: KL '$k' vs '${KL[wp-Q8_0]:-}'"
fi
for m in Q8_0 Q4_0 Q4_K_M; do
    o=${KL[owl-$m]:-x} w=${KL[wp-$m]:-x}
    awk -v o="$o" -v w="$w" 'BEGIN { exit !(o > 0 && w > 0 && o <= 1.05 * w) }' \
        && echo "ok: $m: owl KL $o <= 1.05 x llama.cpp KL $w" || fail "$m: owl KL '$o' vs llama.cpp '$w' (limit 1.05x)"
done

# 3. quantize errors
owl_fails bad_type 2 "unknown type 'Q4_K_X'" quantize "$F32" "$TMP/out/x.gguf" --type Q4_K_X
owl_fails no_type 2 "no --type" quantize "$F32" "$TMP/out/x.gguf"
owl_fails requant 1 "already quantized.*--allow-requantize" quantize "$WP/wp-Q8_0.gguf" "$TMP/out/x.gguf" --type Q4_0
owl_fails unwritable 1 "cannot write .*no/such/dir/x.gguf: folder .*out/no/such/dir: No such file" quantize "$F32" "$TMP/out/no/such/dir/x.gguf" --type Q8_0
owl_fails missing_in 1 "nope.gguf" quantize "$TMP/nope.gguf" "$TMP/out/x.gguf" --type Q8_0
# rows of 48 values (a random model made by make_model.py): no 32-blocks
if "$PY" "$SRC/tests/reference/make_model.py" --out "$TMP/r48" --dim 48 --heads 4 --ffn 96 --no-ref > /dev/null; then
    owl_fails rows48 1 "token_embd.weight.*rows of 48 values do not divide into the 32-value blocks Q8_0" quantize "$TMP/r48.gguf" "$TMP/out/x.gguf" --type Q8_0
    # Q4_K_M falls back: the output matrix (tied) to Q8_0 cannot either
    owl_fails rows48_k 1 "output.weight.*rows of 48 .*Q4_K_M" quantize "$TMP/r48.gguf" "$TMP/out/x.gguf" --type Q4_K_M
    owl_ok rows48_f16 quantize "$TMP/r48.gguf" "$TMP/out/f16.gguf" --type F16 && rm -f "$TMP/out/f16.gguf" "$TMP/out/owl.manifest.json" # the manifest owl quantize writes beside it
else
    fail "make_model.py failed"
fi
nothing_left "$TMP/out" "quantize errors"
# disk full: files may not grow past 1 MB (the Q8_0 file is 12.8 MB); SIGXFSZ
# ignored so that write() fails with EFBIG instead of killing the process
(
    ulimit -f 1024
    trap '' XFSZ
    exec "$OWL_BIN" quantize "$F32" "$TMP/out/full.gguf" --type Q8_0 > "$TMP/full.out" 2> "$TMP/full.err"
)
rc=$?
if [ $rc = 1 ] && grep -q "full.gguf" "$TMP/full.err"; then echo "ok: disk full: $(cat "$TMP/full.err")"; else fail "disk full: status $rc: $(cat "$TMP/full.err")"; fi
nothing_left "$TMP/out" "disk full"
(
    ulimit -f 1024
    trap '' XFSZ
    exec "$OWL_BIN" quantize "$WP/hf" "$TMP/out/full.gguf" --type Q8_0 > "$TMP/full.out" 2> "$TMP/full.err"
)
rc=$?
if [ $rc = 1 ] && grep -q "too large" "$TMP/full.err"; then echo "ok: disk full, HF in: $(cat "$TMP/full.err")"; else fail "disk full, HF in: status $rc: $(cat "$TMP/full.err")"; fi
nothing_left "$TMP/out" "disk full, HF in"
# requantizing when allowed: Q8_0 -> Q4_0 gives a working file
if owl_ok requant_ok quantize "$WP/wp-Q8_0.gguf" "$TMP/out/rq.gguf" --type Q4_0 --allow-requantize; then
    owl_ok rq_ppl perplexity "$TMP/out/rq.gguf" -f "$TMP/valid.txt" --ctx 64 --chunks 2 -t 2 && echo "ok: requantized file runs"
fi

# 4. perplexity errors
owl_fails ppl_missing 1 "nope.gguf" perplexity "$TMP/nope.gguf" -f "$TMP/valid.txt"
owl_fails ppl_missing_text 1 "nope.txt" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/nope.txt"
owl_fails ppl_short 1 "fewer than two windows" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/short.txt" --ctx 256
owl_fails ppl_big_ctx 1 "larger than the model's context \(256\)" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/valid.txt" --ctx 512
owl_fails ppl_base_vocab 1 "base model has 512 tokens in its vocabulary, the model 32000" perplexity "$WP/wp-Q8_0.gguf" \
    -f "$TMP/valid.txt" --ctx 64 --kl-base "$OWL_TESTDATA/models/stories260K.gguf"
: > "$TMP/empty.txt"
owl_fails ppl_empty 1 "the text has 1 tokens, fewer than two windows" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/empty.txt"
owl_fails ppl_chunks0 2 "chunks" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/valid.txt" --chunks 0
owl_fails ppl_no_text 2 "no text" perplexity "$WP/wp-Q8_0.gguf"
owl_fails ppl_bad_ctx 2 "ctx" perplexity "$WP/wp-Q8_0.gguf" -f "$TMP/valid.txt" --ctx 12x

if [ $failures != 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all ok"
