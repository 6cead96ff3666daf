#!/usr/bin/env bash
# owl bench --peak (the machine's matrix units and bandwidth) and the prompt
# efficiency fields of owl bench MODEL: JSON fields checked against their
# definitions (pp FLOPs recomputed here from the model's shape), the unit
# matching the weight type (integer for quantized weights, float for F32),
# table output, and bad flags (exit 2, one line naming the flag or value).
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
TMP=${OWL_TMP:-/tmp}/e2e_bench
rm -rf "$TMP"
mkdir -p "$TMP"
PY=${OWL_PYTHON:-/usr/bin/python3}
GGUF=$OWL_TESTDATA/models/stories260K.gguf
source "$(dirname "$0")/shell_lib.sh"

# expect STATUS PATTERN ARGS...: exit STATUS, one stderr line starting with
# "owl" that contains PATTERN.
expect() {
    local want=$1 pattern=$2
    shift 2
    local rc=0
    "$OWL_BIN" "$@" > "$TMP/out" 2> "$TMP/err" < /dev/null || rc=$?
    local err
    err=$(grep -v '^owl: warning: ' "$TMP/err" || true)
    if [[ $rc -ne $want ]]; then
        fail "owl $*: exit status $rc, want $want; stderr: $err"
    elif [[ $(printf '%s\n' "$err" | wc -l) -ne 1 || $err != owl* ]]; then
        fail "owl $*: want one line starting with 'owl' on stderr, got: $err"
    elif [[ $err != *"$pattern"* ]]; then
        fail "owl $*: stderr does not mention '$pattern': $err"
    else
        echo "ok: owl $* -> $rc: $err"
    fi
}

for flag in --peak --no-peak --seconds; do
    "$OWL_BIN" bench --help | grep -q -- "$flag\b" || fail "owl bench --help does not document $flag"
done

# bad flags
expect 2 "no MODEL" bench --peak "$GGUF"
expect 2 "--seconds" bench --peak --seconds 0
expect 2 "--seconds" bench --peak --seconds abc
expect 2 "--seconds" bench --peak --seconds 1e9
expect 2 "--seconds needs a value" bench --peak --seconds
expect 2 "-t" bench --peak -t -3
expect 2 "no model" bench --no-peak

# --peak as JSON: every unit listed, on 1 and 2 threads; available ones
# have a positive rate, the others none
if "$OWL_BIN" bench --peak -t 2 --seconds 0.02 --bw-mib 8 --bw-seconds 0.02 --json > "$TMP/peak.json" 2> "$TMP/err"; then
    if ! "$PY" - "$TMP/peak.json" <<'PYEOF'; then fail "bench --peak --json: $(cat "$TMP/peak.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
assert r["threads"] == 2, r
units = {}
for u in r["units"]:
    units.setdefault(u["unit"], []).append(u)
    assert u["kind"] == ("int8" if u["unit"] in ("amx_int8", "vnni_int8") else "float"), u
    if u["available"]:
        assert u["gops"] > 0 and abs(u["gops_per_thread"] * u["threads"] - u["gops"]) <= 1e-9 * u["gops"], u
    else:
        assert u["gops"] is None and u["gops_per_thread"] is None, u
assert sorted(units) == sorted(["amx_int8", "amx_bf16", "vnni_int8", "avx512_bf16", "avx512_fp32"]), units
for name, rows in units.items():
    assert sorted(x["threads"] for x in rows) == [1, 2], rows
assert [b["threads"] for b in r["bandwidth"]] == [1, 2] and all(b["gb_s"] > 0 for b in r["bandwidth"]), r
print("ok: bench --peak --json")
PYEOF
else
    fail "owl bench --peak --json: $(cat "$TMP/err")"
fi
if "$OWL_BIN" bench --peak -t 1 --seconds 0.02 --no-bandwidth > "$TMP/peak.txt" 2> "$TMP/err"; then
    for unit in amx_int8 amx_bf16 vnni_int8 avx512_bf16 avx512_fp32; do
        grep -q "^$unit " "$TMP/peak.txt" || fail "bench --peak table has no $unit: $(cat "$TMP/peak.txt")"
    done
    grep -q bandwidth "$TMP/peak.txt" && fail "bench --peak --no-bandwidth printed a bandwidth"
else
    fail "owl bench --peak: $(cat "$TMP/err")"
fi

# owl bench MODEL: F32 weights compare with a float unit, Q8_0 ones with an
# integer unit; FLOPs from the shape
"$PY" "${OWL_SOURCE_DIR:-$(dirname "$0")/..}/tests/reference/make_model.py" --out "$TMP/m" --dim 64 --layers 2 --heads 4 \
    --kv-heads 2 --ffn 128 --vocab 300 --dtype f32 --no-ref > /dev/null || fail "make_model.py"
"$OWL_BIN" quantize "$TMP/m.gguf" "$TMP/q8.gguf" --type Q8_0 > /dev/null 2> "$TMP/err" || fail "owl quantize: $(cat "$TMP/err")"
for m in "$TMP/m.gguf" "$TMP/q8.gguf"; do
    if "$OWL_BIN" bench "$m" -p 24 -n 4 -r 2 -t 1 --seconds 0.02 --no-bandwidth --json > "$TMP/b.json" 2> "$TMP/err"; then
        if ! "$PY" - "$TMP/b.json" <<'PYEOF'; then fail "bench --json $m: $(cat "$TMP/b.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
quant = r["weight_type"] not in ("F32", "F16", "BF16")
unit = r["peak_unit"]
if unit is not None:
    assert unit in (("amx_int8", "vnni_int8") if quant else ("amx_bf16", "avx512_bf16", "avx512_fp32")), r
    assert r["peak_gops"] > 0, r
hd = r["head_dim"]
qd, kvd, d, p = r["n_heads"] * hd, r["n_kv_heads"] * hd, r["dim"], r["pp"]["tokens"]
layer = d * qd + 2 * d * kvd + qd * d + 3 * d * r["ffn_dim"]
flops = r["n_layers"] * (2 * layer * p + 4 * qd * p * (p + 1) / 2) + 2 * r["n_vocab"] * d
assert abs(r["pp_flops"] - flops) <= 1e-9 * flops, (r["pp_flops"], flops)
assert abs(r["pp_gflop_s"] - flops * r["pp"]["tok_s_median"] / p / 1e9) <= 1e-6 * r["pp_gflop_s"], r
if unit is not None:
    assert abs(r["pp_peak_fraction"] - r["pp_gflop_s"] / r["peak_gops"]) <= 1e-6 * r["pp_peak_fraction"], r
for t in ("pp", "tg"):
    assert r[t]["tok_s_cpu_median"] > 0, r
assert r["bandwidth_gb_s"] is None and r["tg_bandwidth_fraction"] is None, r
print("ok: bench --json", r["weight_type"], unit)
PYEOF
    else
        fail "owl bench $m: $(cat "$TMP/err")"
    fi
done
# --no-peak: no unit, no fraction
if "$OWL_BIN" bench "$TMP/q8.gguf" -p 8 -n 0 -r 1 -t 1 --no-peak --json > "$TMP/b.json" 2> "$TMP/err"; then
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["peak_unit"] is None and r["pp_peak_fraction"] is None and r["pp_flops"] > 0, r' \
        "$TMP/b.json" || fail "bench --no-peak: $(cat "$TMP/b.json")"
else
    fail "owl bench --no-peak: $(cat "$TMP/err")"
fi
# the table names the unit (or none on a CPU without one)
if "$OWL_BIN" bench "$TMP/q8.gguf" -p 8 -n 2 -r 1 -t 1 --seconds 0.02 --no-bandwidth > "$TMP/b.txt" 2> "$TMP/err"; then
    grep -q "pp FLOP/s" "$TMP/b.txt" || fail "bench table has no pp FLOP/s line: $(cat "$TMP/b.txt")"
else
    fail "owl bench table: $(cat "$TMP/err")"
fi

if ((failures)); then
    echo "e2e_bench: $failures failed" >&2
    exit 1
fi
echo "e2e_bench: all passed"
