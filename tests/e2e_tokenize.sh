#!/usr/bin/env bash
# owl tokenize --ids against published and independent references:
#  - llama.cpp's Llama 2 tokenizer test vectors (43 texts, no BOS), through
#    the "wp" model's GGUF (it carries the Llama 2 vocabulary) and the
#    standalone Llama 2 tokenizer.model and tokenizer.bin;
#  - Debian's sentencepiece on the Llama 2 tokenizer.model for more texts
#    (with BOS);
#  - stories260K's 512-piece vocabulary from the llama2.c tokenizer.bin and
#    from the GGUF give the same ids.
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
TMP=${OWL_TMP:-/tmp}/e2e_tokenize
rm -rf "$TMP"
mkdir -p "$TMP/cases"
PY=${OWL_PYTHON:-/usr/bin/python3}
TD=$OWL_TESTDATA
WP=$TD/models/wp/wp-Q4_0.gguf
source "$(dirname "$0")/shell_lib.sh"

# Split the vectors into one file per case (exact bytes) and its ids.
"$PY" - "$TD/vectors/llama.cpp/ggml-vocab-llama-spm.gguf" "$TMP/cases" <<'PYEOF'
import sys
base, out = sys.argv[1], sys.argv[2]
texts = open(base + ".inp", encoding="utf-8", newline="").read().split("\n__ggml_vocab_test__\n")[:-1]
ids = open(base + ".out", encoding="utf-8").read().split("\n")
for i, t in enumerate(texts):
    open(f"{out}/{i:03d}.txt", "w", encoding="utf-8", newline="").write(t)
    open(f"{out}/{i:03d}.ids", "w").write(" ".join(ids[i].split()) + "\n")
print(f"{len(texts)} cases")
PYEOF

# The same vocabulary three ways: the wp model's GGUF, SentencePiece's
# tokenizer.model and llama2.c's tokenizer.bin (standalone tokenizer files).
for src in "$WP" "$TD/tokenizers/llama2/tokenizer.model" "$TD/tokenizers/llama2/tokenizer.bin"; do
    n=0
    bad=0
    for txt in "$TMP"/cases/*.txt; do
        want=${txt%.txt}.ids
        if ! "$OWL_BIN" tokenize "$src" -f "$txt" --ids --no-bos > "$TMP/got" 2> "$TMP/err"; then
            fail "$(basename "$src") case $(basename "$txt"): owl tokenize failed: $(cat "$TMP/err")"
            bad=$((bad + 1))
        elif ! cmp -s "$TMP/got" "$want"; then
            fail "$(basename "$src") case $(basename "$txt") $(head -c 60 "$txt" | od -An -c | tr -s ' ' | head -c 120): got '$(cat "$TMP/got")', want '$(cat "$want")'"
            bad=$((bad + 1))
        fi
        n=$((n + 1))
    done
    echo "llama.cpp Llama 2 vectors through $(basename "$src"): $n cases, $bad failed"
    [[ $n -ge 40 ]] || fail "only $n vector cases found"
done

# sentencepiece as the reference for a few more texts, with BOS
texts=("Hello, world!" "The quick brown fox jumps over the lazy dog." "  leading spaces" "unicode: héllo wörld ✓ 日本語"
    "numbers 1234567890 and symbols #\$%^&*()" "tabs	and
newlines" "Prince Andrew looked at Pierre.")
for i in "${!texts[@]}"; do printf '%s' "${texts[$i]}" > "$TMP/sp_$i.txt"; done
"$PY" - "$TD/tokenizers/llama2/tokenizer.model" "$TMP" "${#texts[@]}" <<'PYEOF'
import sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
for i in range(int(sys.argv[3])):
    t = open(f"{sys.argv[2]}/sp_{i}.txt", encoding="utf-8").read()
    open(f"{sys.argv[2]}/sp_{i}.ids", "w").write(" ".join(map(str, [sp.bos_id()] + sp.encode(t))) + "\n")
PYEOF
for i in "${!texts[@]}"; do
    if ! "$OWL_BIN" tokenize "$WP" -f "$TMP/sp_$i.txt" --ids > "$TMP/got" 2> "$TMP/err"; then
        fail "sentencepiece case $i: owl tokenize failed: $(cat "$TMP/err")"
    elif ! cmp -s "$TMP/got" "$TMP/sp_$i.ids"; then
        fail "sentencepiece case $i '${texts[$i]}': got '$(cat "$TMP/got")', want '$(cat "$TMP/sp_$i.ids")'"
    fi
done
echo "sentencepiece: ${#texts[@]} cases"

# stories260K: the llama2.c tokenizer.bin and the GGUF vocabulary agree
for t in "Once upon a time, there was a little girl named Lily." "She saw a big, red ball!" "x"; do
    a=$("$OWL_BIN" tokenize "$TD/models/stories260K.bin" --tokenizer "$TD/tokenizers/tinystories512/tok512.bin" "$t" --ids 2> "$TMP/err") ||
        fail "tokenize (tok512.bin) '$t': $(cat "$TMP/err")"
    b=$("$OWL_BIN" tokenize "$TD/models/stories260K.gguf" "$t" --ids 2> "$TMP/err") || fail "tokenize (GGUF) '$t': $(cat "$TMP/err")"
    [[ $a == "$b" ]] || fail "'$t': tok512.bin gives '$a', the GGUF '$b'"
done

if ((failures)); then
    echo "e2e_tokenize: $failures failed" >&2
    exit 1
fi
echo "e2e_tokenize: all passed"
