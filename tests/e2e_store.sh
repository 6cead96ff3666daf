#!/usr/bin/env bash
# The model store end to end, against tests/reference/hub_server.py:
#  - store names (ORG/NAME, @REVISION, @COMMIT, /FILE) as MODEL for run,
#    chat, bench, perplexity, tokenize, inspect, license, verify, convert,
#    quantize and serve, giving what the same commands give on the files
#    (or the directory) the store holds; a path on disk wins over a name;
#    unknown names, revisions and files, and a snapshot with two GGUF files,
#    are clear errors (how to pull it, which files there are);
#  - owl verify ORG/NAME checks each file against its blob's name and
#    catches a flipped byte;
#  - owl serve --policy refuses a denied model before loading (rule named,
#    exit 1, for a path and a store name) and serves an allowed one; the
#    audit log's model_sha256 is the file's SHA-256 (sha256sum), and for a
#    Hugging Face directory the SHA-256 of its sorted sha256sum list;
#  - a hub answering 500, not HTTP, truncated, with a wrong Content-Length
#    or a JSON answer of the wrong shape, and a full disk (ulimit -f): each
#    a clear error, non-zero exit, owl list still works and shows nothing of
#    that repository, and a later pull succeeds (resuming what it kept).
set -uo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
PY=${OWL_PYTHON:-/usr/bin/python3}
SRC=${OWL_SOURCE_DIR:-$(dirname "$0")/..}
TMP=${OWL_TMP:-/tmp}/e2e_store
rm -rf "$TMP"
mkdir -p "$TMP/srv" "$TMP/store" "$TMP/cwd/org"
export OWL_STORE=$TMP/store
MODEL=$OWL_TESTDATA/models/stories260K.gguf
MODEL_SHA=270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d # testdata/SHA256SUMS
WPHF=$OWL_TESTDATA/models/wp/hf
COMMIT=0123456789abcdef0123456789abcdef01234567 # hub_server.py's
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

source "$(dirname "$0")/shell_lib.sh"
same() { # same NAME FILE1 FILE2
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1: $2 and $3 differ: $(diff "$2" "$3" | head -5)"; fi
}
control() { printf '%s' "$1" > "$TMP/srv/_control.json"; }
# the store shows nothing of REPO and owl list works (with open: nor can
# REPO be opened as a model)
not_listed() { # NAME REPO [open]
    if ! "$OWL_BIN" list > "$TMP/list.out" 2>&1; then
        fail "$1: owl list failed: $(cat "$TMP/list.out")"
    elif grep -q "^$2 " "$TMP/list.out"; then
        fail "$1: owl list shows $2 after a failed pull"
    elif [ $# -gt 2 ] && "$OWL_BIN" inspect "$2" --no-hash > /dev/null 2>&1; then
        fail "$1: $2 can be opened after a failed pull"
    else
        ok "$1: owl list works, $2 not in it"
    fi
}

# ---- the hub ----
mkdir -p "$TMP/srv/org/q8" "$TMP/srv/org/tiny" "$TMP/srv/org/wp" "$TMP/srv/org/two" "$TMP/srv/org/big" "$TMP/srv/org/full"
cp "$MODEL" "$TMP/srv/org/tiny/model.gguf"
cp "$OWL_TESTDATA/models/wp/wp-Q8_0.gguf" "$TMP/srv/org/q8/" # general.license mit
printf 'notes\n' > "$TMP/srv/org/tiny/notes.txt"
cp "$WPHF"/* "$TMP/srv/org/wp/"
cp "$MODEL" "$TMP/srv/org/two/a.gguf"
cp "$MODEL" "$TMP/srv/org/two/b.gguf"
head -c 300000 /dev/urandom > "$TMP/srv/org/big/big.bin"
head -c 400000 /dev/urandom > "$TMP/srv/org/full/w.bin"
control '{}'
"$PY" "$SRC/tests/reference/hub_server.py" "$TMP/srv" "$TMP/port" > "$TMP/hub.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { echo "the hub stand-in did not start: $(cat "$TMP/hub.log")"; exit 1; }
EP=http://127.0.0.1:$(cat "$TMP/port")

for r in tiny wp two q8; do owl_ok "pull_$r" pull "org/$r" --endpoint "$EP" -q; done
SNAP=$(cat "$TMP/pull_tiny.out")
WPSNAP=$(cat "$TMP/pull_wp.out")

# ---- store names as MODEL ----
owl_ok run_path run "$MODEL" -p Once -n 8 -s 1
for name in org/tiny org/tiny@main "org/tiny@$COMMIT" org/tiny/model.gguf org/tiny@main/model.gguf org/two/b.gguf; do
    n=run_${name//\//_}
    owl_ok "$n" run "$name" -p Once -n 8 -s 1 && same "run $name = run on the file" "$TMP/run_path.out" "$TMP/$n.out"
done
echo "Hi" | "$OWL_BIN" chat org/tiny -n 3 -s 1 > "$TMP/chat.out" 2> "$TMP/chat.err" && ok "chat org/tiny" ||
    fail "chat org/tiny: $(cat "$TMP/chat.err")"
owl_ok tok_path tokenize "$MODEL" "Once upon a time"
owl_ok tok_name tokenize org/tiny "Once upon a time" && same "tokenize org/tiny" "$TMP/tok_path.out" "$TMP/tok_name.out"
owl_ok bench_name bench org/tiny -p 16 -n 4 -r 1 --no-bandwidth -t 1
head -c 20000 "$OWL_TESTDATA/text/war-and-peace.txt" > "$TMP/text.txt"
owl_ok ppl_path perplexity "$MODEL" -f "$TMP/text.txt" -c 128 --chunks 2 -t 1
owl_ok ppl_name perplexity org/tiny -f "$TMP/text.txt" -c 128 --chunks 2 -t 1 --kl-base "org/tiny@$COMMIT" &&
    { grep "^PPL = " "$TMP/ppl_path.out" > "$TMP/ppl_a" && grep "^PPL = " "$TMP/ppl_name.out" > "$TMP/ppl_b" &&
        same "perplexity org/tiny" "$TMP/ppl_a" "$TMP/ppl_b"; }
owl_ok inspect_path inspect "$MODEL" --json
owl_ok inspect_name inspect org/tiny --json
"$PY" - "$TMP/inspect_path.out" "$TMP/inspect_name.out" "$MODEL_SHA" <<'EOF' && ok "inspect org/tiny = inspect on the file" || fail "inspect org/tiny differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("architecture", "parameters", "tensors", "tokenizer", "metadata"):
    assert a[k] == b[k], k
assert [f["sha256"] for f in b["files"]] == [sys.argv[3]], b["files"]
EOF
owl_ok license_wp license org/wp --json
[ "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"]["id"])' "$TMP/license_wp.out")" = MIT ] &&
    ok "license org/wp: MIT (the card)" || fail "license org/wp: $(cat "$TMP/license_wp.out")"
owl_ok license_q8 license org/q8 --json
[ "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"]["id"])' "$TMP/license_q8.out")" = MIT ] &&
    ok "license org/q8: MIT (the GGUF keys of a snapshot without card)" || fail "license org/q8: $(cat "$TMP/license_q8.out")"
owl_ok list_names list
awk '$1 == "org/wp" && $6 == "MIT" && $7 == "safetensors" {a++} $1 == "org/q8" && $6 == "MIT" && $7 == "gguf" {b++}
     $1 == "org/tiny" && $6 == "unknown" && $7 == "gguf" {c++} END {exit !(a == 1 && b == 1 && c == 1)}' "$TMP/list_names.out" &&
    ok "owl list: licence and formats" || fail "owl list: $(cat "$TMP/list_names.out")"
owl_ok verify_tiny verify org/tiny
grep -q "ok  $MODEL_SHA  .* model.gguf" "$TMP/verify_tiny.out" && grep -q "notes.txt" "$TMP/verify_tiny.out" &&
    ok "verify org/tiny: each file against its blob" || fail "verify org/tiny: $(cat "$TMP/verify_tiny.out")"
owl_ok verify_wp verify org/wp@main
[ "$(grep -c '^ok ' "$TMP/verify_wp.out")" = "$(ls "$WPHF" | wc -l)" ] && ok "verify org/wp: every file" ||
    fail "verify org/wp: $(cat "$TMP/verify_wp.out")"
owl_fails verify_write_store 1 "org/tiny is in the store, whose files are checked by their blob names" verify org/tiny --write
# a flipped byte in a blob: verify names the file
BLOB=$TMP/store/models--org--two/blobs/$MODEL_SHA
chmod u+w "$BLOB"
printf '\xff' | dd of="$BLOB" bs=1 seek=5000 conv=notrunc 2> /dev/null
owl_fails verify_flip 1 "[ab].gguf has sha256 [0-9a-f]{64}, its blob is named $MODEL_SHA" verify org/two
owl_ok rm_two rm org/two
# convert and quantize from store names: the manifest names the snapshot
owl_ok convert_name convert org/wp -o "$TMP/cwd/wp.gguf" --type f32
owl_ok quantize_name quantize org/tiny "$TMP/cwd/tiny-q8.gguf" --type F16
"$PY" - "$TMP/cwd/owl.manifest.json" "$(readlink -f "$WPSNAP")" "$SNAP/model.gguf" "$MODEL_SHA" <<'EOF' && ok "manifests of convert/quantize from store names" || fail "manifest: $(cat "$TMP/cwd/owl.manifest.json")"
import json, sys
m = json.load(open(sys.argv[1]))["files"]
assert m["wp.gguf"]["source"]["path"] == sys.argv[2] and m["wp.gguf"]["source"]["license"] == "MIT", m
assert m["tiny-q8.gguf"]["source"]["sha256"] == sys.argv[4] and m["tiny-q8.gguf"]["source"]["license"] is None, m
EOF
# errors
owl_fails unknown 1 "org/none.*owl pull org/none" run org/none -p x -n 1
owl_fails unknown_rev 1 "no revision 'v9' of org/tiny \(it has: main\).*owl pull org/tiny --revision v9" run org/tiny@v9 -p x -n 1
owl_fails unknown_file 1 "no file 'nope.gguf'.*GGUF files: model.gguf" inspect org/tiny/nope.gguf
owl_ok pull_two_again pull org/two --endpoint "$EP" -q
owl_fails two_ggufs 1 "org/two holds 2 GGUF files \(a.gguf, b.gguf\): name one, e.g. org/two/a.gguf" run org/two -p x -n 1
owl_fails bad_name 1 "cannot open model 'org/../x'" run org/../x -p x -n 1
owl_fails serve_unknown 1 "owl pull org/none" serve org/none --port 0 --no-auth
# a path on disk wins over a store name
cp "$OWL_TESTDATA/models/wp/wp-Q8_0.gguf" "$TMP/cwd/org/tiny"
(cd "$TMP/cwd" && "$OWL_BIN" inspect org/tiny --json --no-hash > "$TMP/inspect_local.out" 2>&1)
[ "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokenizer"]["tokens"])' "$TMP/inspect_local.out")" = 32000 ] &&
    ok "a file named org/tiny wins over the store" || fail "path vs store: $(head -c 300 "$TMP/inspect_local.out")"

# ---- owl serve --policy ----
printf '{"require_known_license": true}' > "$TMP/known.json"
printf '{"allow_licenses": ["MIT"]}' > "$TMP/mit.json"
printf '{"deny_licenses": ["MIT"]}' > "$TMP/nomit.json"
printf '{"pinned_digests": {"model.gguf": "%s"}}' "$MODEL_SHA" > "$TMP/pinned.json"
printf '{"pinned_digests": {"model.gguf": "%s"}}' "$(printf '0%.0s' $(seq 64))" > "$TMP/pinned_bad.json"
owl_fails serve_denied 1 "refused by policy: known.json: rule require_known_license" serve "$MODEL" --port 0 --no-auth --policy "$TMP/known.json"
owl_fails serve_denied_name 1 "refused by policy: known.json: rule require_known_license" serve org/tiny --port 0 --no-auth --policy "$TMP/known.json"
owl_fails serve_denied_mit 1 "refused by policy: nomit.json: rule deny_licenses" serve org/wp --port 0 --no-auth --policy "$TMP/nomit.json"
owl_fails serve_pin_bad 1 "refused by policy: pinned_bad.json: rule pinned_digests" serve org/tiny --port 0 --no-auth --policy "$TMP/pinned_bad.json"
owl_fails serve_bad_policy 1 "nope.json" serve org/tiny --port 0 --no-auth --policy "$TMP/nope.json"
owl_fails serve_policy_noval 2 "policy" serve org/tiny --policy
# allowed: serves; the audit log carries the model's digest
serve_check() { # NAME MODEL POLICY WANT_DIGEST MODEL_NAME
    local name=$1
    rm -f "$TMP/$name.audit"
    "$OWL_BIN" serve "$2" --port 0 -t 1 --no-auth --policy "$3" --audit "$TMP/$name.audit" 2> "$TMP/$name.err" &
    local pid=$! port=
    PIDS+=($pid)
    for _ in $(seq 1 200); do
        port=$(grep -o 'on http://127.0.0.1:[0-9]*' "$TMP/$name.err" 2> /dev/null | sed 's/.*://')
        [ -n "$port" ] && break
        kill -0 $pid 2> /dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        fail "$name: serve did not start: $(cat "$TMP/$name.err")"
        return
    fi
    local code
    code=$(curl -s -o "$TMP/$name.body" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
        --data-binary "{\"model\": \"$5\", \"prompt\": \"Once\", \"max_tokens\": 2}" "http://127.0.0.1:$port/v1/completions")
    kill -TERM $pid
    wait $pid
    local got
    got=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["model_sha256"])' "$TMP/$name.audit" 2>&1)
    if [ "$code" = 200 ] && [ "$got" = "$4" ]; then ok "$name: serves, audit model_sha256 $got"; else
        fail "$name: HTTP $code, audit model_sha256 '$got', want $4: $(cat "$TMP/$name.body")"; fi
}
serve_check serve_pinned org/tiny "$TMP/pinned.json" "$MODEL_SHA" tiny
# a directory's digest: SHA-256 of "sha256  name" lines, sorted by name (sha256sum's own format)
WP_DIGEST=$(cd "$WPSNAP" && ls | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
serve_check serve_mit org/wp "$TMP/mit.json" "$WP_DIGEST" wp

# ---- a hub that answers badly ----
for mode in 500 not_http truncated long_length short_length not_json wrong_shape bad_sibling bad_lfs; do
    control "{\"api\": \"$mode\"}"
    case $mode in
    500) pat="HTTP 500 \(the hub failed" ;;
    not_http) pat="api/models/org/big/revision/main.*: the answer is not HTTP" ;;
    truncated | long_length) pat="api/models/org/big.*: the answer was cut short" ;;
    short_length | not_json) pat="api/models/org/big.*not JSON" ;;
    wrong_shape) pat="answer has no commit \"sha\" \(hex\) and \"siblings\" list" ;;
    bad_sibling) pat="siblings\[0\] has no safe relative \"rfilename\"" ;;
    bad_lfs) pat="big.bin: lfs.sha256 is not 64 lower-case hex digits" ;;
    esac
    owl_fails "hub_api_$mode" 1 "$pat" pull org/big --endpoint "$EP" -q
    not_listed "hub_api_$mode" org/big
done
# short_length first: after the others a complete partial file is there to be checked
for mode in 500 not_http short_length truncated long_length; do
    control "{\"files\": {\"big.bin\": \"$mode\"}}"
    case $mode in
    500) pat="resolve/$COMMIT/big.bin: HTTP 500 \(the hub failed" ;;
    not_http) pat="resolve/$COMMIT/big.bin: the answer is not HTTP" ;;
    truncated | long_length) pat="big.bin: the answer was cut short .*partial download kept: pull again to resume" ;;
    short_length) pat="org/big: big.bin: downloaded 150000 bytes, the hub lists 300000 \(file removed\)" ;;
    esac
    owl_fails "hub_file_$mode" 1 "$pat" pull org/big --endpoint "$EP" -q
    not_listed "hub_file_$mode" org/big open
done
control '{}'
owl_ok pull_big_after pull org/big --endpoint "$EP" -q && same "org/big after the broken answers" "$(cat "$TMP/pull_big_after.out")/big.bin" "$TMP/srv/org/big/big.bin"
[ -z "$(ls "$TMP/store/models--org--big/blobs/" | grep incomplete)" ] && ok "no partial file left" || fail "partial file left: $(ls "$TMP/store/models--org--big/blobs/")"

# ---- a full disk: writes past RLIMIT_FSIZE fail with EFBIG (owl ignores SIGXFSZ) ----
(
    ulimit -f 200 # bash: 1024-byte blocks, 204800 bytes < 400000
    exec "$OWL_BIN" pull org/full --endpoint "$EP" -q > "$TMP/full.out" 2> "$TMP/full.err"
)
rc=$?
if [ $rc = 1 ] && grep -Eq "w.bin: cannot write .*: File too large \(partial download kept: make room and pull again" "$TMP/full.err"; then
    ok "disk full: $(cat "$TMP/full.err")"
else fail "disk full: status $rc: $(cat "$TMP/full.err")"; fi
not_listed disk_full org/full open
: > "$TMP/srv/_log.txt"
owl_ok pull_full_after pull org/full --endpoint "$EP" -q && same "org/full after the full disk" "$(cat "$TMP/pull_full_after.out")/w.bin" "$TMP/srv/org/full/w.bin"
grep -Eq "w.bin bytes=[1-9][0-9]*-" "$TMP/srv/_log.txt" && ok "the pull after the full disk resumed" || fail "no resume: $(cat "$TMP/srv/_log.txt")"
owl_ok list_end list
grep -q "^org/full " "$TMP/list_end.out" && grep -q "^org/big " "$TMP/list_end.out" && ok "list after all" || fail "list: $(cat "$TMP/list_end.out")"

if [ $failures != 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all ok"
