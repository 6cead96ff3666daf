#!/usr/bin/python3
"""Reference renderer for owl's chat templates: Python's jinja2 configured the
way Hugging Face's apply_chat_template configures it (ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks, loopcontrols and the {% generation %} tag of
its AssistantTracker; globals raise_exception and
strftime_now; a tojson filter that keeps non-ASCII characters).

Usage:
  render_template.py batch IN.json OUT.json
      IN: {"now": unix_seconds, "cases": [{"template": str, "inputs": {...}}]}
      OUT: [{"ok": bool, "output": str, "error": str}]
  render_template.py gen-cases TEMPLATES_DIR OUT.json [--random N] [--seed S]
      Renders every template in TEMPLATES_DIR/hf/*.jinja and
      TEMPLATES_DIR/ollama/templates.jsonl with a fixed set of conversations
      and N seeded random ones per template, and writes
      {"now": ..., "templates": [{"name", "source"}],
       "cases": [{"template": index, "inputs", "ok", "output", "error"}]}
  render_template.py random-templates OUT.json N SEED
      N seeded random templates (expressions, filters, tests, methods, loops,
      whitespace control) rendered with one fixed set of inputs:
      {"now", "inputs", "cases": [{"template", "ok", "output", "error"}]}
"""
import copy
import datetime
import glob
import json
import os
import random
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox

NOW = 1718900000  # a fixed clock for strftime_now (2024-06-20 16:13:20 UTC)


class RaisedError(Exception):
    pass


class GenerationTag(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} as Hugging Face's AssistantTracker
    renders it when no assistant mask is asked for: the body, unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(fmt)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, GenerationTag])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, inputs, cache=None):
    try:
        if cache is not None and source in cache:
            tmpl = cache[source]
        else:
            tmpl = env.from_string(source)
            if cache is not None:
                cache[source] = tmpl
        # a fresh copy: jinja2 can change its inputs (|indent on a list
        # extends the list), and each case must start from the same values
        return {"ok": True, "output": tmpl.render(**copy.deepcopy(inputs)), "error": ""}
    except Exception as e:  # every failure is an expected error for owl too
        return {"ok": False, "output": "", "error": "%s: %s" % (type(e).__name__, e)}


def batch(inp, outp):
    with open(inp, encoding="utf-8") as f:
        spec = json.load(f)
    env = make_env(spec.get("now", NOW))
    res = [render(env, c["template"], c["inputs"]) for c in spec["cases"]]
    with open(outp, "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=True)


# ---- conversations ----

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — in °C.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"},
                           "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
        },
    },
}]


def tool_call(args_as_string):
    args = {"city": "Zürich", "days": 2}
    return {"type": "function", "id": "call_1",
            "function": {"name": "get_weather",
                         "arguments": json.dumps(args) if args_as_string else args}}


def fixed_conversations():
    u = lambda c: {"role": "user", "content": c}
    a = lambda c: {"role": "assistant", "content": c}
    s = lambda c: {"role": "system", "content": c}
    convs = [
        [u("Hello!")],
        [s("You are a helpful assistant."), u("Hello!")],
        [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")],
        [s("Be brief."), u("Hi"), a("Hello."), u("What is 2+2?"), a("4"), u("Thanks")],
        [u("  spaced content \n"), a("\n reply with spaces  "), u("naïve café ✓ 日本語 🦉")],
        [u("quotes ' \" and braces {{ }} {% %} and backslash \\ ")],
        [u("Hi"), u("Again?")],
        [a("I start?"), u("ok")],
        [s("sys"), s("second system"), u("hey")],
        [u("Weather in Zürich?"),
         {"role": "assistant", "content": None, "tool_calls": [tool_call(True)]},
         {"role": "tool", "content": "{\"temp\": 21}", "name": "get_weather"},
         a("It is 21 °C.")],
        [u("Weather?"),
         {"role": "assistant", "content": "", "tool_calls": [tool_call(False), tool_call(False)]},
         {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "warm"}, u("thanks")],
        [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": " part two"}]}],
        [s("sys"), {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}]}],
        [u("Think first"), a("<think>\nreasoning here\n</think>\n\nThe answer is 42."), u("And now?")],
        [u("Think"), {"role": "assistant", "content": "Answer", "reasoning_content": "Because."}],
        [],
    ]
    out = []
    for i, msgs in enumerate(convs):
        for agp in (True, False):
            inputs = {"messages": msgs, "add_generation_prompt": agp,
                      "bos_token": "<s>", "eos_token": "</s>"}
            if i in (9, 10):
                inputs["tools"] = TOOLS
            if i == 13 and agp:
                inputs["enable_thinking"] = False
            out.append(inputs)
    # without bos/eos tokens and without add_generation_prompt at all
    out.append({"messages": convs[2]})
    return out


PIECES = ["Hello", "world", " ", "  ", "\n", "\n\n", "\t", "ünïcödé", "日本", "🦉", "'", '"', "\\",
          "{{", "}}", "{%", "#}", "<think>", "</think>", "<|im_end|>", "[INST]", "1.5", "null",
          "<tool_response>", "</tool_response>", "x" * 40]


def random_text(rng):
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))


def random_conversation(rng):
    msgs = []
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": random_text(rng)})
    n = rng.randint(0, 6)
    alternate = rng.random() < 0.75
    for i in range(n):
        if alternate:
            role = "user" if i % 2 == 0 else "assistant"
        else:
            role = rng.choice(["user", "assistant", "system", "tool"])
        m = {"role": role, "content": random_text(rng)}
        if role == "assistant" and rng.random() < 0.2:
            m["tool_calls"] = [tool_call(rng.random() < 0.5)]
            if rng.random() < 0.5:
                m["content"] = None
        if rng.random() < 0.05:
            m["content"] = [{"type": "text", "text": random_text(rng)}]
        msgs.append(m)
    inputs = {"messages": msgs}
    if rng.random() < 0.9:
        inputs["add_generation_prompt"] = rng.random() < 0.5
    if rng.random() < 0.8:
        inputs["bos_token"] = rng.choice(["<s>", "<|begin_of_text|>", ""])
        inputs["eos_token"] = rng.choice(["</s>", "<|eot_id|>"])
    if rng.random() < 0.2:
        inputs["tools"] = TOOLS
    return inputs


def load_templates(root):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "hf", "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            out.append({"name": os.path.basename(path), "source": f.read()})
    with open(os.path.join(root, "ollama", "templates.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            for k, v in json.loads(line).items():
                out.append({"name": "ollama:%d:%s" % (i + 1, k), "source": v})
    return out


def gen_cases(root, outp, n_random, seed):
    env = make_env(NOW)
    templates = load_templates(root)
    rng = random.Random(seed)
    fixed = fixed_conversations()
    cases = []
    cache = {}
    for ti, t in enumerate(templates):
        convs = fixed + [random_conversation(rng) for _ in range(n_random)]
        for inputs in convs:
            r = render(env, t["source"], inputs, cache)
            r.update({"template": ti, "inputs": inputs})
            cases.append(r)
    with open(outp, "w", encoding="utf-8") as f:
        json.dump({"now": NOW, "templates": templates, "cases": cases}, f, ensure_ascii=True)


# ---- random templates (differential test of the interpreter itself) ----

RT_INPUTS = {
    "messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi there"},
                 {"role": "assistant", "content": "Hello!",
                  "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}],
    "x": 5, "f": 2.5, "s": "Hello World", "n": None, "t": True, "l": [3, 1, 2], "d": {"b": 1, "a": 2},
    "u8": "na\u00efve \u2713", "words": ["b", "A", "c", "a"], "add_generation_prompt": True,
    "bos_token": "<s>", "eos_token": "</s>"}
RT_ATOMS = ["x", "f", "n", "t", "s", "l", "d", "u8", "words", "messages", "messages[0]", "messages[1].content",
            "messages[-1]", "nope", "1", "0", "-3", "2.5", "0.1", "'abc'", "' a B '", "''", "[1, 2, 3]", "[]",
            "{'k': 1, 'j': [2]}", "none", "true", "false", "(1, 'a')", "'x\\ny'", "1e3", "10",
            "'Hello World'", "d.a", "d['b']", "messages|length", "loop_i", "ns.v", "'%s|%5.2f' % (s, f)",
            "'%d%%' % x", "'<%s>'|format(u8)"]
RT_FILTERS = ["trim", "length", "upper", "lower", "capitalize", "title", "string", "list", "first", "last",
              "int", "float", "abs", "round", "reverse|list", "sort", "unique|list", "join", "join(', ')",
              "default('D')", "default('D', true)", "tojson", "tojson(indent=2)", "items|list", "dictsort",
              "count", "replace('a', 'b')", "map(attribute='role')|list",
              "selectattr('role', 'equalto', 'user')|list", "select('odd')|list", "reject('none')|list",
              "map('string')|join", "min", "max", "sum", "indent(2)", "e", "safe", "d('x')", "trim('a')",
              "round(1)", "sort(reverse=true)", "map('upper')|list", "select|list"]
RT_TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable",
            "sequence", "boolean", "true", "false", "odd", "even", "divisibleby 2", "equalto 1", "in [1, 2]",
            "lower", "upper", "eq 'abc'", "gt 1", "lt 2", "ne 0"]
RT_METHODS = ["strip()", "lstrip()", "rstrip('x')", "upper()", "lower()", "title()", "capitalize()",
              "split()", "split(',')", "split(' ', 1)", "rsplit(' ', 1)", "startswith('a')",
              "endswith(('c', 'd'))", "replace('l', 'L')", "find('o')", "count('l')", "items()|list",
              "keys()|list", "values()|list", "get('a')", "get('zz', 0)", "index(1)", "format(1)",
              "join(['p', 'q'])", "rfind('l')", "strip(' a')"]
RT_BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in",
             "and", "or"]


def random_template(rng):
    def expr(depth=0):
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice(RT_ATOMS)
        if r < 0.45:
            return "%s|%s" % (expr(depth + 1), rng.choice(RT_FILTERS))
        if r < 0.55:
            return "%s is %s%s" % (expr(depth + 1), rng.choice(["", "not "]), rng.choice(RT_TESTS))
        if r < 0.65:
            return "%s.%s" % (rng.choice(["s", "u8", "d", "l", "words", "messages[0].content", "'a,b c'"]),
                              rng.choice(RT_METHODS))
        if r < 0.85:
            return "(%s %s %s)" % (expr(depth + 1), rng.choice(RT_BINOPS), expr(depth + 1))
        if r < 0.9:
            return "(%s if %s else %s)" % (expr(depth + 1), expr(depth + 1), expr(depth + 1))
        if r < 0.95:
            return "not %s" % expr(depth + 1)
        return "%s[%s]" % (rng.choice(["l", "s", "u8", "words", "messages", "'abcdef'"]),
                           rng.choice(["0", "-1", "1:", ":-1", "::-1", "::2", "5", "1:3", "-2:"]))

    def tag(body):
        return "{%" + rng.choice(["", "-", "", "+"]) + " " + body + " " + rng.choice(["", "-", "", "+"]) + "%}"

    def text():
        return rng.choice(["", " ", "\n", "  \n", "txt", "\n  ", "a b\n", "\t", "\n\n"])

    def stmts(depth=0):
        out = []
        for _ in range(rng.randint(1, 3)):
            r = rng.random()
            out.append(text())
            if depth > 2 or r < 0.4:
                out.append("{{" + rng.choice(["", "-"]) + " " + expr() + " " + rng.choice(["", "-"]) + "}}")
            elif r < 0.55:
                out.append(tag("if " + expr()) + stmts(depth + 1) +
                           (tag("else") + stmts(depth + 1) if rng.random() < 0.5 else "") + tag("endif"))
            elif r < 0.7:
                it = rng.choice(["l", "messages", "words", "d", "s", "range(3)", "d.items()", "[]", "nope"])
                tgt = "k, v" if it == "d.items()" else "loop_i"
                filt = " if loop_i" if rng.random() < 0.2 and tgt == "loop_i" else ""
                body = stmts(depth + 1)
                if rng.random() < 0.3:
                    body += tag("if loop.index > 1") + tag(rng.choice(["break", "continue"])) + tag("endif")
                body += "{{ loop.index }}{{ loop.last }}"
                out.append(tag("for %s in %s%s" % (tgt, it, filt)) + body +
                           (tag("else") + "E" if rng.random() < 0.3 else "") + tag("endfor"))
            elif r < 0.75:
                out.append(tag("set ns.v = " + expr()))
            elif r < 0.8:
                out.append(tag("set x = " + expr()))
            elif r < 0.84:
                out.append(tag("macro mac(a, b=%s)" % rng.choice(RT_ATOMS)) + stmts(depth + 1) + "{{ a }}{{ b }}" +
                           tag("endmacro") + "{{ mac(%s) }}{{ mac(%s, b=%s) }}" % (expr(2), expr(2), expr(2)))
            elif r < 0.87:
                out.append(tag("set blk" + rng.choice(["", " | upper", " | trim"])) + stmts(depth + 1) +
                           tag("endset") + "[{{ blk }}]")
            elif r < 0.89:
                out.append(tag("filter " + rng.choice(["upper", "trim", "replace('a', 'b')"])) + stmts(depth + 1) +
                           tag("endfilter"))
            elif r < 0.9:
                out.append(tag("raw") + text() + "{{ x }}" + text() + tag("endraw"))
            else:
                out.append("{#" + rng.choice(["", "-"]) + " c " + rng.choice(["", "-"]) + "#}")
            out.append(text())
        return "".join(out)

    return tag("set ns = namespace(v=0)") + stmts()


def random_templates(outp, n, seed):
    env = make_env(NOW)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        src = random_template(rng)
        r = render(env, src, RT_INPUTS)
        r.update({"template": src})
        cases.append(r)
    with open(outp, "w", encoding="utf-8") as f:
        json.dump({"now": NOW, "inputs": RT_INPUTS, "cases": cases}, f, ensure_ascii=True)


def main(argv):
    if len(argv) >= 3 and argv[1] == "batch":
        batch(argv[2], argv[3])
        return 0
    if len(argv) >= 4 and argv[1] == "gen-cases":
        n, seed = 10, 1234
        rest = argv[4:]
        for i in range(0, len(rest) - 1, 2):
            if rest[i] == "--random":
                n = int(rest[i + 1])
            elif rest[i] == "--seed":
                seed = int(rest[i + 1])
        gen_cases(argv[2], argv[3], n, seed)
        return 0
    if len(argv) >= 5 and argv[1] == "random-templates":
        random_templates(argv[2], int(argv[3]), int(argv[4]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
