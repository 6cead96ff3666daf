#!/usr/bin/python3
"""Float64 reference for owl's LoRA fine-tuning: the loss of a token sequence
with a LoRA adapter merged into the base (W + s * B @ A, with llama_ref.py's
forward pass), and the gradients of that loss with respect to every element
of every A and B by central finite differences.

    train_ref.py MODEL IN.json OUT.json

MODEL: a GGUF file or a Hugging Face directory (as llama_ref.py reads them).
IN.json: {"tokens": [...], "target": [0/1 per token: token i is predicted
from the tokens before it], "scale": s, "rank": r, "pairs": [{"layer": l,
"proj": "q"|"k"|"v"|"o"|"gate"|"up"|"down", "a": [r*in floats, row-major
r x in], "b": [out*r floats, out x r]}]}.
OUT.json: {"loss": mean cross-entropy over the targets, "grads": [{"a":
[...], "b": [...]} per pair]}.

The loss is the mean over the targets of -log softmax(logits[i-1])[tokens[i]].
Nothing here comes from owl: the forward pass is llama_ref.py's, the
derivatives are differences of float64 losses.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

STEM = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
        "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


def load(path):
    if os.path.isdir(path):
        return llama_ref.read_hf(path)
    meta, W = llama_ref.read_gguf(path)
    return W, llama_ref.hparams_from_meta(meta, W)


def mean_ce(W, hp, tokens, target):
    logits = llama_ref.forward(W, hp, tokens)
    total, count = 0.0, 0
    for i in range(1, len(tokens)):
        if target[i]:
            row = logits[i - 1]
            mx = row.max()
            total += mx + np.log(np.exp(row - mx).sum()) - row[tokens[i]]
            count += 1
    return total / count


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    W, hp = load(sys.argv[1])
    inp = json.load(open(sys.argv[2]))
    tokens, target, s, r = inp["tokens"], inp["target"], float(inp["scale"]), int(inp["rank"])
    pairs = []
    for p in inp["pairs"]:
        key = "blk.%d.%s.weight" % (p["layer"], STEM[p["proj"]])
        out_, in_ = W[key].shape
        a = np.asarray(p["a"], dtype=np.float64).reshape(r, in_)
        b = np.asarray(p["b"], dtype=np.float64).reshape(out_, r)
        pairs.append((key, a, b))
    base = {key: W[key].copy() for key, _, _ in pairs}

    def merged():
        W2 = dict(W)
        for key, a, b in pairs:
            W2[key] = base[key] + s * (b @ a)
        return W2

    loss = mean_ce(merged(), hp, tokens, target)
    grads = []
    for key, a, b in pairs:
        g = {}
        for name, m in (("a", a), ("b", b)):
            d = np.zeros(m.size)
            flat = m.reshape(-1)  # a view: perturbing it perturbs the pair
            for i in range(m.size):
                v = flat[i]
                h = 1e-5 * max(1.0, abs(v))
                flat[i] = v + h
                lp = mean_ce(merged(), hp, tokens, target)
                flat[i] = v - h
                lm = mean_ce(merged(), hp, tokens, target)
                flat[i] = v
                d[i] = (lp - lm) / (2 * h)
            g[name] = d.tolist()
        grads.append(g)
    json.dump({"loss": loss, "grads": grads}, open(sys.argv[3], "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
