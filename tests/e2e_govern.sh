#!/usr/bin/env bash
# Governance end to end on the command line:
#  - owl convert and owl quantize write the output's manifest: owl verify
#    OUT passes (and catches a flipped byte), the licence of the source is
#    carried over - MIT from a LICENSE text only the source directory has,
#    through convert and then quantize - and shown by owl license and
#    owl inspect, and enforced by owl run --policy; without the manifest the
#    output's licence is unknown; a broken manifest beside the output is an
#    error naming it; a manifest naming a missing file fails owl verify;
#  - licence files in UTF-16 (BOM, both byte orders) are classified, one in
#    Latin-1 and a card with broken YAML give "unknown" with the reason
#    (exit 0, never garbage), and a policy requiring a known licence
#    refuses that model in owl run and owl serve.
set -uo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_TESTDATA:?set OWL_TESTDATA}"
PY=${OWL_PYTHON:-/usr/bin/python3}
TMP=${OWL_TMP:-/tmp}/e2e_govern
rm -rf "$TMP"
mkdir -p "$TMP/hf" "$TMP/out" "$TMP/lic"
WPHF=$OWL_TESTDATA/models/wp/hf
MIT=$OWL_TESTDATA/licenses/licenses/MIT.spdx-license-list.txt

source "$(dirname "$0")/shell_lib.sh"
# licence_of NAME MODEL: the licence id owl license --json finds ("unknown" if none)
licence_of() {
    "$OWL_BIN" license --json "$2" > "$TMP/$1.json" 2> "$TMP/$1.err" || { echo "exit $?"; return; }
    "$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["license"]; print(l if isinstance(l, str) else l["id"])' "$TMP/$1.json"
}
note_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("note", ""))' "$TMP/$1.json"; }

# ---- manifests of convert and quantize, the licence carried over ----
# the card names no licence; only the LICENSE text says MIT
cp "$WPHF"/* "$TMP/hf/"
printf -- '---\nlanguage: en\n---\n# wp\n' > "$TMP/hf/README.md"
cp "$MIT" "$TMP/hf/LICENSE"
[ "$(licence_of hf "$TMP/hf")" = MIT ] && ok "the source directory: MIT" || fail "source: $(cat "$TMP/hf.json")"
owl_ok convert convert "$TMP/hf" -o "$TMP/out/wp.gguf" --type f32
owl_ok verify_convert verify "$TMP/out/wp.gguf"
grep -q "^ok  $(sha256sum "$TMP/out/wp.gguf" | cut -c1-64)  .* wp.gguf" "$TMP/verify_convert.out" &&
    ok "verify: sha256sum's digest" || fail "verify output: $(cat "$TMP/verify_convert.out")"
[ "$(licence_of conv "$TMP/out/wp.gguf")" = MIT ] && grep -q "made from $TMP/hf" "$TMP/conv.json" &&
    ok "convert: licence MIT carried from the source" || fail "convert licence: $(cat "$TMP/conv.json")"
owl_ok quantize quantize "$TMP/out/wp.gguf" "$TMP/out/wp-q8.gguf" --type Q8_0
owl_ok verify_quant verify "$TMP/out/wp-q8.gguf"
[ "$(licence_of quant "$TMP/out/wp-q8.gguf")" = MIT ] && ok "quantize: licence MIT carried on" ||
    fail "quantize licence: $(cat "$TMP/quant.json")"
owl_ok inspect inspect "$TMP/out/wp-q8.gguf" --json --no-hash
[ "$("$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["license"]; print(l["license"]["id"] if isinstance(l.get("license"), dict) else l)' "$TMP/inspect.out")" = MIT ] &&
    ok "inspect shows the source's licence" || fail "inspect licence: $(head -c 600 "$TMP/inspect.out")"
printf '{"allow_licenses": ["MIT"]}' > "$TMP/mit.json"
printf '{"deny_licenses": ["MIT"]}' > "$TMP/nomit.json"
printf '{"require_known_license": true}' > "$TMP/known.json"
owl_ok run_allowed run "$TMP/out/wp-q8.gguf" --policy "$TMP/mit.json" -p Once -n 2 -t 1
owl_fails run_denied 1 "refused by policy: nomit.json: rule deny_licenses" run "$TMP/out/wp-q8.gguf" --policy "$TMP/nomit.json" -p Once -n 2
# a flipped byte in the output
cp "$TMP/out/wp-q8.gguf" "$TMP/q8.keep"
printf '\x55' | dd of="$TMP/out/wp-q8.gguf" bs=1 seek=1000000 conv=notrunc 2> /dev/null
owl_fails verify_flip 1 "wp-q8.gguf has sha256 [0-9a-f]{64}, owl.manifest.json says" verify "$TMP/out/wp-q8.gguf"
mv "$TMP/q8.keep" "$TMP/out/wp-q8.gguf"
# a manifest naming a file that is missing
mv "$TMP/out/wp.gguf" "$TMP/wp.keep"
owl_fails verify_missing 1 "owl.manifest.json names wp.gguf, which is missing" verify "$TMP/out"
mv "$TMP/wp.keep" "$TMP/out/wp.gguf"
owl_ok verify_dir verify "$TMP/out"
# without the manifest the GGUF carries no licence of its own
mv "$TMP/out/owl.manifest.json" "$TMP/manifest.keep"
[ "$(licence_of bare "$TMP/out/wp-q8.gguf")" = unknown ] && ok "without the manifest: unknown" ||
    fail "without manifest: $(cat "$TMP/bare.json")"
# a broken manifest beside the output: the model is written, the error names the manifest
printf '{"version": 1, "files": [' > "$TMP/out/owl.manifest.json"
owl_fails convert_broken_manifest 1 "wrote .*wp2.gguf, but not its manifest: .*owl.manifest.json" convert "$TMP/hf" -o "$TMP/out/wp2.gguf" --type f32
[ "$(licence_of broken "$TMP/out/wp-q8.gguf")" = unknown ] && grep -q "could not be read" "$TMP/broken.json" &&
    ok "a broken manifest: licence unknown, the reason given" || fail "broken manifest licence: $(cat "$TMP/broken.json")"
mv "$TMP/manifest.keep" "$TMP/out/owl.manifest.json"

# ---- licence files in other encodings, broken cards ----
mkdir -p "$TMP/lic/le" "$TMP/lic/be" "$TMP/lic/latin1" "$TMP/lic/yaml"
"$PY" - "$MIT" "$TMP/lic" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2] + "/le/LICENSE", "wb").write(b"\xff\xfe" + text.encode("utf-16-le"))
open(sys.argv[2] + "/be/LICENSE", "wb").write(b"\xfe\xff" + text.encode("utf-16-be"))
open(sys.argv[2] + "/latin1/LICENSE", "wb").write(text.replace("Permission", "Autorisation accord\u00e9e").encode("latin-1"))
EOF
[ "$(licence_of le "$TMP/lic/le")" = MIT ] && ok "UTF-16 LE with BOM: MIT" || fail "UTF-16 LE: $(cat "$TMP/le.json" "$TMP/le.err")"
[ "$(licence_of be "$TMP/lic/be")" = MIT ] && ok "UTF-16 BE with BOM: MIT" || fail "UTF-16 BE: $(cat "$TMP/be.json" "$TMP/be.err")"
[ "$(licence_of latin1 "$TMP/lic/latin1")" = unknown ] && note_of latin1 | grep -q "UTF-8" &&
    ok "Latin-1: unknown ($(note_of latin1))" || fail "Latin-1: $(cat "$TMP/latin1.json" "$TMP/latin1.err")"
printf -- "---\nlicense: mit\ntags: [a, b\n---\n" > "$TMP/lic/yaml/README.md"
[ "$(licence_of yaml "$TMP/lic/yaml")" = unknown ] && note_of yaml | grep -q "line" &&
    ok "broken card YAML: unknown ($(note_of yaml))" || fail "broken YAML: $(cat "$TMP/yaml.json" "$TMP/yaml.err")"
# the same on a model: inspect works, a policy needing a known licence refuses it
cp "$WPHF"/* "$TMP/lic/latin1/"
owl_ok inspect_latin1 inspect "$TMP/lic/latin1" --json --no-hash
owl_fails run_latin1 1 "refused by policy: known.json: rule require_known_license" run "$TMP/lic/latin1" --policy "$TMP/known.json" -p x -n 1
cp "$WPHF"/* "$TMP/lic/yaml/"
printf -- "---\nlicense: mit\ntags: [a, b\n---\n" > "$TMP/lic/yaml/README.md" # the broken card again
owl_fails serve_yaml 1 "refused by policy: known.json: rule require_known_license" serve "$TMP/lic/yaml" --port 0 --no-auth --policy "$TMP/known.json"

if [ $failures != 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all ok"
