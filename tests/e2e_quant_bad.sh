#!/usr/bin/env bash
# Quantized files and `owl quantize` on bad input, end to end (issue 4):
#  - GGUF files broken on purpose by tests/reference/gguf_corrupt.py (its
#    own header walker): tensor data shorter than its type needs, an unknown
#    type id (99) and a removed one (4), a K-quant row its 256-blocks do not
#    divide, an F32 row no 32-block type divides; `owl quantize`, `owl run`
#    and `owl inspect` each fail with status 1 and a message naming the
#    tensor and what is wrong;
#  - outputs that cannot be written (under a regular file, a folder as OUT,
#    a missing folder, /proc): status 1, a clear message, before the work;
#  - a full disk half-way through a streamed K-quant output (ulimit -f,
#    SIGXFSZ ignored so that write() fails with EFBIG): status 1, the path
#    and the reason named, no temporary file left, an existing OUT untouched;
#  - the output is the same bytes with 1 and 2 threads and from run to run.
set -uo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}"
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:-$(dirname "$0")/..}
TMP=${OWL_TMP:-/tmp}/e2e_quant_bad
rm -rf "$TMP"
mkdir -p "$TMP/out"
source "$(dirname "$0")/shell_lib.sh"
# owl_fails NAME PATTERN ARGS...: owl must exit with status 1 and print
# PATTERN (grep -E) on stderr
owl_fails() {
    local name=$1 pat=$2
    shift 2
    "$OWL_BIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
    local rc=$?
    if [ "$rc" != 1 ]; then
        fail "$name: owl $* exited with $rc, want 1: $(head -c 300 "$TMP/$name.err")"
    elif ! grep -Eq "$pat" "$TMP/$name.err"; then
        fail "$name: message '$(cat "$TMP/$name.err")' lacks '$pat'"
    else
        echo "ok: $name: $(head -c 200 "$TMP/$name.err")"
    fi
}
nothing_left() { # DIR WHAT
    if [ -n "$(ls -A "$1")" ]; then fail "$2: left behind: $(ls -A "$1")"; else echo "ok: $2: nothing left behind"; fi
}
corrupt() { "$PY" "$SRC/tests/reference/gguf_corrupt.py" "$@" || fail "gguf_corrupt.py $*"; }

M=$TMP/m
"$PY" "$SRC/tests/reference/make_model.py" --out "$M" --dim 256 --heads 4 --ffn 512 --layers 2 --vocab 300 --no-ref \
    > /dev/null || { echo "make_model.py failed"; exit 1; }
Q=$TMP/mq.gguf
"$OWL_BIN" quantize "$M.gguf" "$Q" --type Q4_K_M --threads 2 2> "$TMP/q.err" ||
    { echo "owl quantize of the generated model failed: $(cat "$TMP/q.err")"; exit 1; }

# 1. broken files
last=$(corrupt "$Q" - last)
[ "$last" = output.weight ] || fail "the tensor stored last is '$last', want output.weight"
corrupt "$Q" "$TMP/short.gguf" short output.weight 10
corrupt "$Q" "$TMP/t99.gguf" type blk.0.ffn_up.weight 99
corrupt "$Q" "$TMP/t4.gguf" type blk.1.attn_q.weight 4
corrupt "$Q" "$TMP/ne128.gguf" ne0 blk.0.ffn_up.weight 128
corrupt "$M.gguf" "$TMP/ne255.gguf" ne0 blk.0.ffn_up.weight 255
for cmd in quantize run inspect; do
    args=()
    [ $cmd = quantize ] && args=("$TMP/out/x.gguf" --type Q4_0 --allow-requantize)
    [ $cmd = run ] && args=(-p hi -n 2)
    owl_fails "short_$cmd" "short.gguf: tensor 'output.weight': data at offset [0-9]+, 63000 bytes, runs past the end of the file" \
        $cmd "$TMP/short.gguf" "${args[@]}"
    owl_fails "t99_$cmd" "t99.gguf: tensor 'blk.0.ffn_up.weight': unknown dtype id 99" $cmd "$TMP/t99.gguf" "${args[@]}"
    owl_fails "t4_$cmd" "t4.gguf: tensor 'blk.1.attn_q.weight': unknown dtype id 4" $cmd "$TMP/t4.gguf" "${args[@]}"
    owl_fails "ne128_$cmd" "ne128.gguf: tensor 'blk.0.ffn_up.weight': row length ne\[0\] = 128 is not a multiple of the Q4_K block size 256" \
        $cmd "$TMP/ne128.gguf" "${args[@]}"
done
owl_fails ne255_quantize "ne255.gguf: tensor 'blk.0.ffn_up.weight': rows of 255 values do not divide into the 32-value blocks Q4_0" \
    quantize "$TMP/ne255.gguf" "$TMP/out/x.gguf" --type Q4_0
owl_fails ne255_run "blk.0.ffn_up.weight has shape \[255, 512\], expected \[256, 512\]" run "$TMP/ne255.gguf" -p hi -n 2
nothing_left "$TMP/out" "broken inputs"

# 2. outputs that cannot be written
owl_fails out_under_file "cannot write .*m.gguf/x.gguf: folder .*m.gguf: Not a directory" \
    quantize "$M.gguf" "$M.gguf/x.gguf" --type Q8_0
owl_fails out_is_folder "cannot write .*out: it is a folder" quantize "$M.gguf" "$TMP/out" --type Q8_0
owl_fails out_no_folder "cannot write .*out/no/x.gguf: folder .*out/no: No such file or directory" \
    quantize "$M.gguf" "$TMP/out/no/x.gguf" --type Q8_0
owl_fails out_proc "/proc/owl-e2e-x.gguf: cannot create a temporary file beside it" \
    quantize "$M.gguf" /proc/owl-e2e-x.gguf --type Q8_0
nothing_left "$TMP/out" "unwritable outputs"

# 3. disk full half-way: files may not grow past 256 KiB (the Q4_K_M output
# is about 0.9 MB); an older OUT stays as it was
echo "the previous file" > "$TMP/out/full.gguf"
(
    ulimit -f 256
    trap '' XFSZ
    exec "$OWL_BIN" quantize "$M.gguf" "$TMP/out/full.gguf" --type Q4_K_M --threads 2 > "$TMP/full.out" 2> "$TMP/full.err"
)
rc=$?
if [ $rc = 1 ] && grep -q "full.gguf: write failed: File too large" "$TMP/full.err"; then
    echo "ok: disk full: $(cat "$TMP/full.err")"
else
    fail "disk full: status $rc: $(cat "$TMP/full.err")"
fi
[ "$(cat "$TMP/out/full.gguf")" = "the previous file" ] && echo "ok: disk full: the older file is untouched" ||
    fail "disk full: the older OUT changed"
rm -f "$TMP/out/full.gguf"
nothing_left "$TMP/out" "disk full"

# 4. the same bytes every time, whatever the thread count
"$OWL_BIN" quantize "$M.gguf" "$TMP/q1.gguf" --type Q4_K_M --threads 1 2> /dev/null || fail "quantize --threads 1"
"$OWL_BIN" quantize "$M.gguf" "$TMP/q2.gguf" --type Q4_K_M --threads 2 2> /dev/null || fail "quantize --threads 2"
cmp -s "$TMP/q1.gguf" "$Q" && cmp -s "$TMP/q2.gguf" "$Q" && echo "ok: same bytes with 1 and 2 threads" ||
    fail "quantizing twice gives different files"

if [ $failures != 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all ok"
