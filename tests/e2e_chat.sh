#!/usr/bin/env bash
# owl chat and owl run --chat, end to end on tiny random models
# (tests/reference/make_model.py) whose vocabulary holds <|im_start|> and
# <|im_end|> as control tokens and whose GGUF carries a ChatML
# tokenizer.chat_template:
#  - piped two-turn session (greedy): each rendered prompt equals Python
#    jinja2's rendering of the same conversation (render_template.py, the
#    conversation as /save wrote it), its ids equal `owl tokenize --special`
#    of that text; turn 1 evaluates everything, turn 2 reuses exactly the
#    cached tokens it shares with the new prompt (turn 1's prompt + answer)
#    and evaluates only the rest;
#  - a fresh session that /load-s turn 1 and asks turn 2 evaluates from 0 and
#    gives the same greedy answer as the session that reused its cache;
#  - owl run --chat [--system] = the first answer of owl chat [--system];
#  - a model without a template: a message and ChatML (checked with jinja2);
#    --template FILE overrides;
#  - a full context: a message, the next turn refused until /reset;
#  - an interactive session in a pseudo-terminal (tmux): two turns, Ctrl-C
#    during generation returns to the prompt with the answer kept, /save,
#    /reset (the next turn evaluates from 0), /load round trip, Ctrl-D and
#    Ctrl-C at the prompt leave with status 0;
#  - bad flags exit 2, a missing template file 1;
#  - real templates (Qwen3, Gemma 3 tokenizers from testdata on random Hugging
#    Face models): their end-of-turn tokens are stops, the rendered prompts
#    and their ids equal jinja2 + owl tokenize, turn 2 reuses turn 1.
set -euo pipefail
: "${OWL_BIN:?set OWL_BIN to the owl binary}" "${OWL_SOURCE_DIR:?set OWL_SOURCE_DIR}"
PY=${OWL_PYTHON:-/usr/bin/python3}
TMP=${OWL_TMP:-/tmp}/e2e_chat
rm -rf "$TMP"
mkdir -p "$TMP"
REF=$OWL_SOURCE_DIR/tests/reference

source "$(dirname "$0")/shell_lib.sh"

CHATML='{% for message in messages %}{{'"'"'<|im_start|>'"'"' + message['"'"'role'"'"'] + '"'"'\n'"'"' + message['"'"'content'"'"'] + '"'"'<|im_end|>'"'"' + '"'"'\n'"'"'}}{% endfor %}{% if add_generation_prompt %}{{ '"'"'<|im_start|>assistant\n'"'"' }}{% endif %}'
printf '%s' "$CHATML" > "$TMP/chatml.jinja"
# Another template (for --template): roles in brackets, a system default.
printf '%s' '{{ bos_token }}{% if messages[0].role != "system" %}[sys]default<|im_end|>{% endif %}{% for m in messages %}[{{ m.role }}]{{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}' > "$TMP/other.jinja"

# Model seed 4: its greedy answers (with -n 3) are printable ASCII byte
# tokens, which tokenize back to themselves, so turn 2 can reuse the whole
# answer; the check below says so if the model ever answers otherwise.
MM=(--no-ref --vocab 261 --dim 32 --heads 2 --ffn 48 --special '<|im_start|>' --special '<|im_end|>')
"$PY" "$REF/make_model.py" --out "$TMP/chat" "${MM[@]}" --ctx 512 --seed 4 \
    --set "tokenizer.chat_template=str:$CHATML" > /dev/null
"$PY" "$REF/make_model.py" --out "$TMP/plain" "${MM[@]}" --ctx 512 --seed 4 > /dev/null
# Long generations for the terminal session (Ctrl-C while it writes).
"$PY" "$REF/make_model.py" --out "$TMP/long" "${MM[@]}" --ctx 32768 --seed 2 \
    --set "tokenizer.chat_template=str:$CHATML" > /dev/null
M=$TMP/chat.gguf

# ---- 1. piped two-turn session ----
printf 'Hello there\n/save %s\nHow are you?\n/save %s\n' "$TMP/p1.json" "$TMP/p2.json" |
    "$OWL_BIN" chat "$M" -t 1 -n 3 --temp 0 -v > "$TMP/pipe.out" 2> "$TMP/pipe.err" ||
    fail "piped session exited with status $?: $(tail -n 3 "$TMP/pipe.err")"
# The fresh session: turn 1 loaded, turn 2 asked (nothing cached).
printf '/load %s\nHow are you?\n' "$TMP/p1.json" |
    "$OWL_BIN" chat "$M" -t 1 -n 3 --temp 0 -v > "$TMP/fresh.out" 2> "$TMP/fresh.err" ||
    fail "fresh session exited with status $?: $(tail -n 3 "$TMP/fresh.err")"

# owl tokenize --special of jinja2's renderings, then the checks in Python.
"$PY" - "$TMP" "$REF" "$CHATML" <<'EOF' > "$TMP/renders.txt" || fail "rendering with jinja2"
import json, sys
tmp, ref, tmpl = sys.argv[1:4]
sys.path.insert(0, ref)
import render_template as rt
env = rt.make_env(rt.NOW)
p1 = json.load(open(tmp + "/p1.json"))["messages"]
p2 = json.load(open(tmp + "/p2.json"))["messages"]
base = {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True}
outs = []
for msgs in (p1[:1], p2[:3]):
    r = rt.render(env, tmpl, dict(base, messages=msgs))
    assert r["ok"], r["error"]
    outs.append(r["output"])
for i, o in enumerate(outs):
    open("%s/render%d.txt" % (tmp, i + 1), "w").write(o)
print(json.dumps(outs))
EOF
for i in 1 2; do
    "$OWL_BIN" tokenize "$M" -f "$TMP/render$i.txt" --special --ids > "$TMP/render$i.ids" 2>&1 ||
        fail "owl tokenize of jinja2's rendering $i: $(cat "$TMP/render$i.ids")"
done
"$PY" - "$TMP" <<'EOF' || fail "piped two-turn session (see above)"
import json, re, sys
tmp = sys.argv[1]
bad = []
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, file=sys.stdout if cond else sys.stderr)
    if not cond: bad.append(what)
def parse(path):
    t = {"prompt": [], "prompt ids": [], "answer ids": [], "cached ids": [], "counts": []}
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"owl chat: prompt (\d+) tokens: (\d+) evaluated, (\d+) reused$", line)
        if m: t["counts"].append(tuple(map(int, m.groups())))
        elif line.startswith("owl chat: prompt \""): t["prompt"].append(json.loads(line[len("owl chat: prompt "):]))
        for k in ("prompt ids", "answer ids", "cached ids"):
            if line.startswith("owl chat: %s:" % k):
                t[k].append([int(x) for x in line.split(":", 2)[2].split()])
    return t
s = parse(tmp + "/pipe.err")
renders = [open("%s/render%d.txt" % (tmp, i)).read() for i in (1, 2)]
want_ids = [[int(x) for x in open("%s/render%d.ids" % (tmp, i)).read().split()] for i in (1, 2)]
check(len(s["prompt"]) == 2 and len(s["counts"]) == 2 and len(s["cached ids"]) == 2, "two turns reported")
if not bad:
    for i in range(2):
        check(s["prompt"][i] == renders[i], "turn %d: rendered prompt = jinja2's rendering" % (i + 1))
        check(s["prompt ids"][i] == want_ids[i], "turn %d: prompt ids = owl tokenize --special of jinja2's text" % (i + 1))
    n1, n2 = len(want_ids[0]), len(want_ids[1])
    a1 = s["answer ids"][0]
    print("turn 1: prompt %d tokens, evaluated %d, reused %d; answer %d tokens" % (n1, s["counts"][0][1], s["counts"][0][2], len(a1)))
    print("turn 2: prompt %d tokens, evaluated %d, reused %d" % (n2, s["counts"][1][1], s["counts"][1][2]))
    check(s["counts"][0] == (n1, n1, 0), "turn 1 evaluates all %d tokens" % n1)
    check(s["cached ids"][0] == want_ids[0] + a1, "after turn 1 the cache holds prompt + answer")
    lcp = 0
    c1 = s["cached ids"][0]
    while lcp < min(len(c1), n2) and c1[lcp] == want_ids[1][lcp]: lcp += 1
    check(s["counts"][1] == (n2, n2 - lcp, lcp), "turn 2 reuses the %d cached tokens it shares, evaluates %d" % (lcp, n2 - lcp))
    # Printable ASCII byte tokens (<0x21>..<0x7E> = ids 36..129) tokenize back to themselves.
    stable = all(36 <= t <= 129 for t in a1)
    check(stable, "the turn 1 answer %s is printable ASCII (else choose another model seed)" % a1)
    check(s["counts"][1][2] == n1 + len(a1), "turn 2 reuses turn 1's prompt + answer (%d + %d)" % (n1, len(a1)))
    p1 = json.load(open(tmp + "/p1.json"))["messages"]
    p2 = json.load(open(tmp + "/p2.json"))["messages"]
    check([m["role"] for m in p2] == ["user", "assistant", "user", "assistant"] and p2[:2] == p1, "/save wrote the conversation")
    answers = open(tmp + "/pipe.out", encoding="utf-8", errors="replace").read()
    check(answers == p2[1]["content"] + "\n" + p2[3]["content"] + "\n", "stdout holds only the answers")
    f = parse(tmp + "/fresh.err")
    check(len(f["counts"]) == 1 and f["counts"][0] == (n2, n2, 0), "after /load in a fresh session turn 2 evaluates from 0")
    check(f["answer ids"] and f["answer ids"][0] == s["answer ids"][1], "the answer with the reused cache = the answer computed from scratch")
sys.exit(1 if bad else 0)
EOF

# ---- 2. owl run --chat ----
if "$OWL_BIN" run "$M" --chat -p "Hello there" -n 3 --temp 0 -t 1 --ids > "$TMP/run.out" 2> "$TMP/run.err"; then
    want=$(grep -m1 '^owl chat: answer ids:' "$TMP/pipe.err" | sed 's/^owl chat: answer ids: //')
    [[ $(cat "$TMP/run.out") == "$want" ]] && echo "ok: owl run --chat = owl chat's first answer" ||
        fail "owl run --chat gave '$(cat "$TMP/run.out")', owl chat '$want'"
else
    fail "owl run --chat exited with status $?: $(cat "$TMP/run.err")"
fi
echo "Hi" | "$OWL_BIN" chat "$M" --system "Be brief." -t 1 -n 4 --temp 0 -v > /dev/null 2> "$TMP/sys.err" || fail "chat --system"
"$OWL_BIN" run "$M" --chat --system "Be brief." -p "Hi" -n 4 --temp 0 -t 1 --ids > "$TMP/runsys.out" 2> "$TMP/runsys.err" || fail "run --chat --system"
want=$(grep -m1 '^owl chat: answer ids:' "$TMP/sys.err" | sed 's/^owl chat: answer ids: //')
[[ $(cat "$TMP/runsys.out") == "$want" ]] && echo "ok: owl run --chat --system = owl chat --system" ||
    fail "run --chat --system gave '$(cat "$TMP/runsys.out")', owl chat '$want'"
grep -q '^owl chat: prompt "<|im_start|>system\\nBe brief.<|im_end|>' "$TMP/sys.err" && echo "ok: --system is the first message" ||
    fail "--system not rendered first: $(grep -m1 'prompt "' "$TMP/sys.err")"

# ---- 3. no template: message + ChatML; --template overrides ----
echo "Hello there" | "$OWL_BIN" chat "$TMP/plain.gguf" -t 1 -n 2 --temp 0 -v > /dev/null 2> "$TMP/plain.err" || fail "no-template chat"
grep -q "has no chat template: using ChatML" "$TMP/plain.err" && echo "ok: no template: message" || fail "no message about the missing template"
grep -m1 '^owl chat: prompt "' "$TMP/plain.err" | sed 's/^owl chat: prompt //' > "$TMP/plain.prompt"
echo "Hello there" | "$OWL_BIN" chat "$M" --template "$TMP/other.jinja" -t 1 -n 2 --temp 0 -v > /dev/null 2> "$TMP/other.err" || fail "--template chat"
grep -q "no chat template" "$TMP/other.err" && fail "--template: a message about a missing template"
grep -m1 '^owl chat: prompt "' "$TMP/other.err" | sed 's/^owl chat: prompt //' > "$TMP/other.prompt"
"$PY" - "$TMP" "$REF" "$CHATML" <<'EOF' || fail "ChatML / --template renderings (see above)"
import json, sys
tmp, ref, chatml = sys.argv[1:4]
sys.path.insert(0, ref)
import render_template as rt
env = rt.make_env(rt.NOW)
inputs = {"messages": [{"role": "user", "content": "Hello there"}], "add_generation_prompt": True,
          "bos_token": "<s>", "eos_token": "</s>"}
ok = True
for name, src in (("plain", chatml), ("other", open(tmp + "/other.jinja").read())):
    want = rt.render(env, src, inputs)["output"]
    got = json.loads(open("%s/%s.prompt" % (tmp, name)).read())
    print(("ok: " if got == want else "FAIL: ") + "%s: rendered prompt = jinja2's" % name)
    if got != want:
        print("  got  %r\n  want %r" % (got, want))
        ok = False
sys.exit(0 if ok else 1)
EOF

# ---- 4. a full context ----
printf 'Hello there\nMore\n/reset\nHi\n' | "$OWL_BIN" chat "$M" -c 48 -t 1 --temp 0 > /dev/null 2> "$TMP/full.err" ||
    fail "full-context session exited with status $?"
grep -q "the context of 48 tokens is full: /reset" "$TMP/full.err" && echo "ok: full context: message" ||
    fail "no full-context message: $(cat "$TMP/full.err")"
grep -q "no longer fits the context of 48 tokens: /reset" "$TMP/full.err" && echo "ok: next turn refused" ||
    fail "no 'no longer fits' message: $(cat "$TMP/full.err")"
[[ $(grep -c ' 0 reused$' "$TMP/full.err") == 2 ]] && echo "ok: after /reset a turn works from 0" ||
    fail "after /reset: $(cat "$TMP/full.err")"

# ---- 5. bad flags and files ----
expect_rc() {
    local want=$1
    shift
    local rc=0
    "$OWL_BIN" "$@" < /dev/null > /dev/null 2> "$TMP/rc.err" || rc=$?
    [[ $rc == "$want" ]] && echo "ok: owl $* -> $want" || fail "owl $*: status $rc, want $want ($(cat "$TMP/rc.err"))"
}
expect_rc 2 chat
expect_rc 2 chat "$M" --bogus
expect_rc 2 chat "$M" --temp abc
expect_rc 2 chat "$M" -n
expect_rc 2 chat "$M" --top-p 2
expect_rc 2 chat "$M" "$M"
expect_rc 2 run "$M" --system hi -p x
expect_rc 1 chat "$M" --template "$TMP/missing.jinja"
expect_rc 1 chat "$TMP/missing.gguf"
printf '{%% for %%}' > "$TMP/broken.jinja"
expect_rc 1 chat "$M" --template "$TMP/broken.jinja"
expect_rc 0 chat --help

# ---- 6. real chat templates: Qwen3 and Gemma 3 tokenizers (testdata) on
#      random Hugging Face models (make_hf.py) of their vocabulary size ----
TD=${OWL_TESTDATA:-$OWL_SOURCE_DIR/../shared/testdata}
for spec in qwen3:151669:151645,151643 gemma3:262145:106,1; do
    IFS=: read -r name vocab want_stops <<< "$spec"
    if [[ ! -f $TD/tokenizers/$name/tokenizer.json ]]; then
        fail "$name: no tokenizer in $TD/tokenizers/$name"
        continue
    fi
    D=$TMP/$name
    "$PY" "$REF/make_hf.py" --out "$D" --arch llama --dim 8 --layers 1 --heads 1 --kv-heads 1 --ffn 8 \
        --vocab "$vocab" --n-tokens 1 --tied > /dev/null
    cp "$TD/tokenizers/$name/tokenizer.json" "$TD/tokenizers/$name/tokenizer_config.json" "$D/"
    printf 'Hello there\nHow are you?\n/save %s\n' "$D.json" |
        "$OWL_BIN" chat "$D" --system "Be brief." -t 1 -n 4 --temp 0 -v > /dev/null 2> "$D.err" ||
        fail "$name: chat exited with status $?: $(tail -n 3 "$D.err")"
    "$PY" - "$D" "$REF" "$want_stops" "$OWL_BIN" <<'EOF2' || fail "$name: real template (see above)"
import json, re, subprocess, sys
d, ref, want_stops, owl = sys.argv[1:5]
sys.path.insert(0, ref)
import render_template as rt
cfg = json.load(open(d + "/tokenizer_config.json"))
msgs = json.load(open(d + ".json"))["messages"]
bos, eos = cfg.get("bos_token") or "", cfg.get("eos_token") or ""
err = open(d + ".err", encoding="utf-8", errors="replace").read().splitlines()
prompts = [json.loads(l[len("owl chat: prompt "):]) for l in err if l.startswith('owl chat: prompt "')]
ids = [[int(x) for x in l.split(":", 2)[2].split()] for l in err if l.startswith("owl chat: prompt ids:")]
counts = [tuple(map(int, m.groups())) for l in err for m in [re.match(r"owl chat: prompt (\d+) tokens: (\d+) evaluated, (\d+) reused$", l)] if m]
stops = [l for l in err if l.startswith("owl chat: stop tokens:")]
ok = True
def check(c, what):
    global ok
    print(("ok: " if c else "FAIL: ") + d.rsplit("/", 1)[1] + ": " + what)
    ok = ok and c
check(len(prompts) == 2 and len(ids) == 2 and len(counts) == 2 and len(msgs) == 5, "two turns")
if ok:
    stop_ids = [int(x.split("=")[0]) for x in stops[0].split(":", 2)[2].split()]
    check(all(int(w) in stop_ids for w in want_stops.split(",")), "stop tokens %s include %s" % (stop_ids, want_stops))
    env = rt.make_env(rt.NOW)
    for i, upto in ((0, 2), (1, 4)):
        r = rt.render(env, cfg["chat_template"], {"messages": msgs[:upto], "add_generation_prompt": True,
                                                  "bos_token": bos, "eos_token": eos})
        check(r["ok"] and prompts[i] == r["output"], "turn %d: rendered prompt = jinja2's" % (i + 1))
        args = [owl, "tokenize", d, "--special", "--ids", "--", r["output"]]
        if bos and r["output"].startswith(bos): args.insert(5, "--no-bos")
        want = [int(x) for x in subprocess.run(args, capture_output=True, text=True).stdout.split()]
        check(ids[i] == want, "turn %d: prompt ids = owl tokenize --special of jinja2's text" % (i + 1))
    n1 = len(ids[0])
    check(counts[0] == (n1, n1, 0) and counts[1][2] >= n1 and counts[1][1] + counts[1][2] == counts[1][0],
          "turn 2 reuses at least turn 1's prompt (%s)" % (counts,))
sys.exit(0 if ok else 1)
EOF2
done

# ---- 7. interactive session in a pseudo-terminal ----
if ! command -v tmux > /dev/null; then
    fail "tmux is not installed (Debian package tmux)"
else
    SOCK=$(mktemp -u /tmp/owl-e2e-chat-tmux.XXXXXX) # short: a socket path has at most 107 bytes
    TM=(tmux -S "$SOCK")
    cleanup() {
        "${TM[@]}" kill-server 2> /dev/null || true
        rm -f "$SOCK"
    }
    trap cleanup EXIT
    # wait_for FILE PATTERN COUNT: until FILE has COUNT lines matching PATTERN (20 s)
    wait_for() {
        for _ in $(seq 200); do
            [[ $(grep -c -- "$2" "$1" 2> /dev/null || true) -ge $3 ]] && return 0
            sleep 0.1
        done
        fail "timed out waiting for '$2' x$3 in $1: $(tail -n 5 "$1" | cut -c1-200)"
        return 1
    }
    # turn TEXT K: sends a message, Ctrl-C once its prompt is evaluated and
    # the answer is being written, waits for the K-th answer to end.
    turn() {
        "${TM[@]}" send-keys -t chat -l "$1"
        "${TM[@]}" send-keys -t chat Enter
        wait_for "$ERR" ' reused$' "$2" || return 1
        sleep 0.3
        "${TM[@]}" send-keys -t chat C-c
        wait_for "$ERR" '^owl chat: answer [0-9]* tokens' "$2"
    }
    ERR=$TMP/tty.err
    "${TM[@]}" new-session -d -s chat -x 120 -y 30 \
        "'$OWL_BIN' chat '$TMP/long.gguf' -c 32768 -t 1 --temp 0 -v 2> '$ERR'; echo \$? > '$TMP/tty.rc'"
    wait_for "$ERR" 'Ctrl-D to leave' 1
    if turn "Hello there" 1 && turn "Again" 2; then
        grep -q 'answer stopped (Ctrl-C)' "$ERR" && echo "ok: Ctrl-C stops the answer" || fail "no 'answer stopped' message"
        [[ $(grep -c '^owl chat: answer [0-9]* tokens (stopped)' "$ERR") == 2 ]] || fail "answers were not stopped by Ctrl-C (too quick?)"
        r2=$(grep ' reused$' "$ERR" | sed -n 2p)
        [[ $r2 =~ ,\ ([0-9]+)\ reused$ ]] && ((BASH_REMATCH[1] >= 42)) && echo "ok: turn 2 reuses turn 1 ($r2)" ||
            fail "turn 2 after Ctrl-C: $r2"
        "${TM[@]}" send-keys -t chat "/save $TMP/tty.json" Enter
        wait_for "$ERR" 'saved 4 messages' 1
        "${TM[@]}" send-keys -t chat "/reset" Enter
        wait_for "$ERR" 'conversation cleared' 1
        if turn "Fresh start" 3; then
            r3=$(grep ' reused$' "$ERR" | sed -n 3p)
            [[ $r3 =~ :\ ([0-9]+)\ evaluated,\ 0\ reused$ ]] && echo "ok: after /reset: $r3" || fail "after /reset: $r3"
        fi
        "${TM[@]}" send-keys -t chat "/load $TMP/tty.json" Enter
        wait_for "$ERR" 'loaded 4 messages' 1
        "${TM[@]}" send-keys -t chat "/save $TMP/tty2.json" Enter
        wait_for "$ERR" "saved 4 messages to '$TMP/tty2.json'" 1
        cmp -s "$TMP/tty.json" "$TMP/tty2.json" && echo "ok: /save, /load, /save round trip" || fail "/load + /save differs"
        "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1]))["messages"]; assert [x["role"] for x in m]==["user","assistant"]*2 and m[0]["content"]=="Hello there" and len(m[1]["content"])>0' "$TMP/tty.json" &&
            echo "ok: the stopped answers are kept in the conversation" || fail "saved conversation: $(head -c 300 "$TMP/tty.json")"
    fi
    "${TM[@]}" send-keys -t chat C-d
    wait_for "$TMP/tty.rc" '^0$' 1 && echo "ok: Ctrl-D at the prompt leaves with status 0"
    # Ctrl-C at the prompt leaves too.
    "${TM[@]}" new-session -d -s chat -x 120 -y 30 \
        "'$OWL_BIN' chat '$TMP/long.gguf' -t 1 2> '$TMP/tty2.err'; echo \$? > '$TMP/tty2.rc'"
    wait_for "$TMP/tty2.err" 'Ctrl-D to leave' 1
    "${TM[@]}" send-keys -t chat C-c
    wait_for "$TMP/tty2.rc" '^0$' 1 && echo "ok: Ctrl-C at the prompt leaves with status 0"
fi

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all e2e_chat checks passed"
