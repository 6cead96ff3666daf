#!/usr/bin/python3
"""Random LoRA adapters for a generated base model, in both formats, written
here with struct/json/NumPy (independently of owl).

    make_lora.py --base BASE.gguf|HF_DIR --out DIR [--gguf OUT.gguf]
                 [--rank 8] [--alpha 16] [--rslora] [--targets q_proj,v_proj,...]
                 [--lm-head] [--embed] [--dtype f32|f16|bf16] [--seed 1]
                 [--rank-pattern MODULE=R] [--alpha-pattern MODULE=A]
                 [--target-regex RE] [--break KIND]

DIR gets adapter_config.json and adapter_model.safetensors with PEFT's
tensor names (lora_A: r x in, lora_B: out x r, Q/K rows in Hugging Face's
rotate-half order; embeddings lora_embedding_A: r x n_vocab,
lora_embedding_B: dim x r). --gguf also writes the same adapter as a
llama.cpp GGUF LoRA (general.type adapter, adapter.lora.alpha,
blk.N.<tensor>.weight.lora_a / lora_b; token_embd's lora_a transposed;
Q/K rows of lora_b permuted for a base of architecture "llama"; per-module
scales folded into lora_b because GGUF has one alpha). Default targets: all
seven projections (Phi-3 bases: qkv_proj, o_proj, gate_up_proj, down_proj).

--break KIND writes a broken adapter for the bad-input tests: nan (a NaN in
a lora_B), drop_b (one lora_B missing), rank_mismatch (one lora_B with one
rank column more), unknown_target (target_modules names "foo_proj"),
bad_shape (one lora_A with a wrong input width), extra_layer (a pair for a
layer the base lacks), modules_to_save, regex_bad (an invalid regex).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

MODULE_GGUF = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
               "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
               "qkv_proj": "attn_qkv", "gate_up_proj": "ffn_up"}
ATTN = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj"}


def load_base(path):
    """(W with GGUF names, hp, arch name, permuted: Q/K rows of the file in llama.cpp's order)."""
    if os.path.isdir(path):
        W, hp = llama_ref.read_hf(path)
        return W, hp, None, False
    meta, W = llama_ref.read_gguf(path)
    hp = llama_ref.hparams_from_meta(meta, W)
    arch = meta["general.architecture"]
    return W, hp, arch, arch == "llama"


def permute_rows(w, n_heads, hd):
    """rotate-half row order -> adjacent pairs (row s*hd/2 + i of a head goes to 2i + s)."""
    return w.reshape(n_heads, 2, hd // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def pattern_value(patterns, key, default):
    import re
    for pat, v in patterns.items():
        if re.match(r"(.*\.)?(%s)$" % pat, key):
            return v
    return default


def encode(a, dtype):
    """(bytes, safetensors / GGUF dtype names) of a float64 array."""
    if dtype == "f32":
        return a.astype("<f4").tobytes(), "F32", 0
    if dtype == "f16":
        return a.astype("<f2").tobytes(), "F16", 1
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    u = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype("<u2")
    return u.tobytes(), "BF16", 30


def rounded(a, dtype):
    """The float64 values the stored bytes hold."""
    if dtype == "f32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "f16":
        return a.astype(np.float16).astype(np.float64)
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    u = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint32) << 16
    return u.view(np.float32).astype(np.float64)


def write_safetensors(path, tensors, dtype):
    """tensors: [(name, float64 array)] in order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, a in tensors:
        b, dt, _ = encode(a, dtype)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, arch, alpha, tensors, dtype):
    """tensors: [(name, float64 array (rows, cols))]: ne = (cols, rows)."""
    align = 32
    meta = [gstr("general.architecture") + struct.pack("<I", 8) + gstr(arch),
            gstr("general.type") + struct.pack("<I", 8) + gstr("adapter"),
            gstr("adapter.type") + struct.pack("<I", 8) + gstr("lora"),
            gstr("adapter.lora.alpha") + struct.pack("<If", 6, alpha)]
    infos, blobs, off = [], [], 0
    for name, a in tensors:
        b, _, gt = encode(a, dtype)
        infos.append(gstr(name) + struct.pack("<IQQIQ", 2, a.shape[1], a.shape[0], gt, off))
        pad = (-len(b)) % align
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gguf")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--targets", default=None)
    ap.add_argument("--lm-head", action="store_true")
    ap.add_argument("--embed", action="store_true")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--gguf-dtype", choices=["f32", "f16", "bf16"], default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rank-pattern", action="append", default=[])
    ap.add_argument("--alpha-pattern", action="append", default=[])
    ap.add_argument("--target-regex", default=None)
    ap.add_argument("--break", dest="brk", default=None)
    a = ap.parse_args()

    W, hp, arch, _ = load_base(a.base)
    if not arch:  # a Hugging Face directory: its GGUF architecture name
        mt = json.load(open(os.path.join(a.base, "config.json")))["model_type"]
        arch = "llama" if mt in ("llama", "mistral") else mt
    permuted = arch == "llama"  # GGUF adapters hold Q/K rows as the family's GGUF files do
    fused = "blk.0.attn_qkv.weight" in W
    if a.targets:
        targets = a.targets.split(",")
    elif fused:
        targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    else:
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    rank_pat = {k: int(v) for k, v in (s.split("=") for s in a.rank_pattern)}
    alpha_pat = {k: float(v) for k, v in (s.split("=") for s in a.alpha_pattern)}
    rng = np.random.default_rng(a.seed)
    scale_of = (lambda al, r: al / math.sqrt(r)) if a.rslora else (lambda al, r: al / r)
    glob_scale = scale_of(a.alpha, a.rank)

    peft, gg = [], []  # (name, array)
    dim, vocab = hp["dim"], W["token_embd.weight"].shape[0]
    for l in range(hp["n_layers"]):
        for mod in targets:
            g = "blk.%d.%s.weight" % (l, MODULE_GGUF[mod])
            out_n, in_n = W[g].shape
            if mod == "gate_up_proj":
                out_n = W[g].shape[0]
            key = "model.layers.%d.%s.%s" % (l, "self_attn" if mod in ATTN else "mlp", mod)
            r = pattern_value(rank_pat, key, a.rank)
            al = pattern_value(alpha_pat, key, a.alpha)
            A = rounded(rng.uniform(-1, 1, (r, in_n)) / math.sqrt(in_n), a.dtype)
            B = rounded(rng.uniform(-1, 1, (out_n, r)) * 2.0 / math.sqrt(r), a.dtype)
            peft.append(("base_model.model.%s.lora_A.weight" % key, A))
            peft.append(("base_model.model.%s.lora_B.weight" % key, B))
            Bg = B * (scale_of(al, r) / (glob_scale * a.rank / r))  # GGUF: scale = alpha / r of the tensor
            if permuted and mod in ("q_proj", "k_proj"):
                heads = hp["n_heads"] if mod == "q_proj" else hp["n_kv_heads"]
                Bg = permute_rows(Bg, heads, hp["head_dim"])
            gg.append((g + ".lora_a", A))
            gg.append((g + ".lora_b", Bg))
    if a.lm_head:
        A = rounded(rng.uniform(-1, 1, (a.rank, dim)) / math.sqrt(dim), a.dtype)
        B = rounded(rng.uniform(-1, 1, (vocab, a.rank)) * 2.0 / math.sqrt(a.rank), a.dtype)
        peft += [("base_model.model.lm_head.lora_A.weight", A), ("base_model.model.lm_head.lora_B.weight", B)]
        gg += [("output.weight.lora_a", A), ("output.weight.lora_b", B)]
        targets.append("lm_head")
    if a.embed:
        A = rounded(rng.uniform(-1, 1, (a.rank, vocab)), a.dtype)
        B = rounded(rng.uniform(-1, 1, (dim, a.rank)) * 0.5 / math.sqrt(a.rank), a.dtype)
        peft += [("base_model.model.model.embed_tokens.lora_embedding_A", A),
                 ("base_model.model.model.embed_tokens.lora_embedding_B", B)]
        gg += [("token_embd.weight.lora_a", A.T.copy()), ("token_embd.weight.lora_b", B)]
        targets.append("embed_tokens")

    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "owl/random-base",
           "r": a.rank, "lora_alpha": a.alpha, "use_rslora": a.rslora, "fan_in_fan_out": False,
           "target_modules": a.target_regex if a.target_regex else targets, "bias": "none",
           "lora_dropout": 0.0, "modules_to_save": None, "rank_pattern": rank_pat, "alpha_pattern": alpha_pat}
    if a.brk == "nan":
        peft[1][1][0, 0] = np.nan
    elif a.brk == "drop_b":
        peft.pop(1)
    elif a.brk == "rank_mismatch":
        n, B = peft[1]
        peft[1] = (n, np.concatenate([B, B[:, :1]], axis=1))
    elif a.brk == "unknown_target":
        cfg["target_modules"] = targets + ["foo_proj"]
    elif a.brk == "bad_shape":
        n, A = peft[0]
        peft[0] = (n, np.concatenate([A, A[:, :1]], axis=1))
    elif a.brk == "extra_layer":
        n, A = peft[0]
        m, B = peft[1]
        L = hp["n_layers"]
        peft += [(n.replace("layers.0.", "layers.%d." % L), A), (m.replace("layers.0.", "layers.%d." % L), B)]
    elif a.brk == "modules_to_save":
        cfg["modules_to_save"] = ["lm_head"]
    elif a.brk == "regex_bad":
        cfg["target_modules"] = "(q_proj"
    elif a.brk:
        sys.exit("unknown --break " + a.brk)

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(a.out, "adapter_model.safetensors"), peft, a.dtype)
    if a.gguf:
        write_gguf(a.gguf, arch, glob_scale * a.rank, gg, a.gguf_dtype or a.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
