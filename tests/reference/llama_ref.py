#!/usr/bin/python3
"""Plain float64 NumPy forward pass of a Llama-style decoder, the reference
that owl's model layer is checked against.

Deliberately simple and independent of owl: its own RMSNorm, RoPE (both
layouts), grouped-query attention with a full causal mask, SwiGLU. It also
holds a small GGUF reader so that it can run on real files.

    llama_ref.py MODEL.gguf TOKENS.txt OUT.f64   # logits of every position
    llama_ref.py HF_DIR TOKENS.txt OUT.f64       # a Hugging Face Llama directory
                                                 # (config.json + model.safetensors)

Weights are a dict of float64 arrays in the usual math orientation:
W[name] has shape (rows, cols) = (ne[1], ne[0]) of the GGUF tensor.
"""
import struct
import sys

import numpy as np


# ---------------------------------------------------------------- forward

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, n_rot, base, neox, scale=1.0, factors=None):
    """x: (T, n_heads, head_dim). Rotates the first n_rot dims of each head.
    neox=False: pairs (2i, 2i+1) (GGUF "llama"); neox=True: pairs
    (i, i + n_rot/2) (Hugging Face rotate_half, GGUF "qwen2").
    Angle of pair i at position p: p * scale * base^(-2i/n_rot) / factors[i]
    (linear scaling; GGUF rope_freqs.weight factors)."""
    out = x.copy()
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)   # (half,)
    if factors is not None:
        inv = inv / factors
    ang = np.asarray(positions, dtype=np.float64)[:, None] * scale * inv[None, :]  # (T, half)
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    if neox:
        a = x[:, :, 0:half]
        b = x[:, :, half:n_rot]
        out[:, :, 0:half] = a * c - b * s
        out[:, :, half:n_rot] = a * s + b * c
    else:
        a = x[:, :, 0:n_rot:2]
        b = x[:, :, 1:n_rot:2]
        out[:, :, 0:n_rot:2] = a * c - b * s
        out[:, :, 1:n_rot:2] = a * s + b * c
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(W, hp, tokens):
    """Logits (T, vocab) of every position of `tokens` (positions 0..T-1)."""
    dim, n_heads, n_kv, hd = hp["dim"], hp["n_heads"], hp["n_kv_heads"], hp["head_dim"]
    eps, base, n_rot, neox = hp["eps"], hp["rope_base"], hp["n_rot"], hp["neox"]
    T = len(tokens)
    pos = np.arange(T)
    x = W["token_embd.weight"][np.asarray(tokens)]          # (T, dim)
    group = n_heads // n_kv
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(hp["n_layers"]):
        p = "blk.%d." % l
        h = rmsnorm(x, W[p + "attn_norm.weight"], eps)
        q = h @ W[p + "attn_q.weight"].T
        k = h @ W[p + "attn_k.weight"].T
        v = h @ W[p + "attn_v.weight"].T
        if p + "attn_q.bias" in W:
            q = q + W[p + "attn_q.bias"]
        if p + "attn_k.bias" in W:
            k = k + W[p + "attn_k.bias"]
        if p + "attn_v.bias" in W:
            v = v + W[p + "attn_v.bias"]
        rs, rf = hp.get("rope_scale", 1.0), W.get("rope_freqs.weight")
        q = rope(q.reshape(T, n_heads, hd), pos, n_rot, base, neox, rs, rf)
        k = rope(k.reshape(T, n_kv, hd), pos, n_rot, base, neox, rs, rf)
        v = v.reshape(T, n_kv, hd)
        att = np.zeros((T, n_heads, hd))
        for hh in range(n_heads):
            g = hh // group
            s = (q[:, hh, :] @ k[:, g, :].T) / np.sqrt(hd) + mask
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=1, keepdims=True)
            att[:, hh, :] = a @ v[:, g, :]
        x = x + att.reshape(T, n_heads * hd) @ W[p + "attn_output.weight"].T
        h = rmsnorm(x, W[p + "ffn_norm.weight"], eps)
        f = silu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)
        x = x + f @ W[p + "ffn_down.weight"].T
    x = rmsnorm(x, W["output_norm.weight"], eps)
    out = W["output.weight"] if "output.weight" in W else W["token_embd.weight"]
    return x @ out.T


# ---------------------------------------------------------------- GGUF

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """(meta dict, {name: float64 array (ne[1], ne[0]) or 1-D}) of a GGUF
    file with F32 / F16 / BF16 tensors."""
    data = open(path, "rb").read()
    off = [0]

    def take(fmt):
        v = struct.unpack_from(fmt, data, off[0])
        off[0] += struct.calcsize(fmt)
        return v[0]

    def string():
        n = take("<Q")
        s = data[off[0]:off[0] + n]
        off[0] += n
        return s.decode("utf-8", "replace")

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et = take("<I")
            n = take("<Q")
            return [value(et) for _ in range(n)]
        return take(_SCALAR[t])

    assert data[:4] == b"GGUF", "not a GGUF file"
    off[0] = 4
    version = take("<I")
    assert version in (2, 3)
    n_t = take("<Q")
    n_kv = take("<Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("<I"))
    infos = []
    for _ in range(n_t):
        name = string()
        nd = take("<I")
        ne = [take("<Q") for _ in range(nd)]
        t = take("<I")
        o = take("<Q")
        infos.append((name, ne, t, o))
    align = meta.get("general.alignment", 32)
    start = (off[0] + align - 1) // align * align
    tensors = {}
    for name, ne, t, o in infos:
        n = int(np.prod(ne))
        b = start + o
        if t == 0:
            a = np.frombuffer(data, np.float32, n, b).astype(np.float64)
        elif t == 1:
            a = np.frombuffer(data, np.float16, n, b).astype(np.float64)
        elif t == 30:
            u = np.frombuffer(data, np.uint16, n, b).astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        else:
            raise ValueError("%s: tensor type %d not supported by the reference" % (name, t))
        tensors[name] = a.reshape(list(reversed(ne))) if len(ne) > 1 else a
    return meta, tensors


def hparams_from_meta(meta, W):
    arch = meta["general.architecture"]

    def key(k, default=None):
        v = meta.get(arch + "." + k, default)
        if v is None:
            raise KeyError(arch + "." + k)
        return v
    dim = key("embedding_length")
    n_heads = key("attention.head_count")
    hd = key("attention.key_length", dim // n_heads)
    return {
        "dim": dim, "n_layers": key("block_count"), "n_heads": n_heads,
        "n_kv_heads": key("attention.head_count_kv", n_heads), "head_dim": hd,
        "eps": key("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_base": key("rope.freq_base", 10000.0),
        "n_rot": key("rope.dimension_count", hd),
        "neox": arch in ("qwen2",),
        "rope_scale": (1.0 / key("rope.scaling.factor", 1.0)
                       if meta.get(arch + ".rope.scaling.type") == "linear" else 1.0),
    }


# ---------------------------------------------------------------- HF

_HF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def read_safetensors(path):
    import json
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data, 0)[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, "<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, "<f2")
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: dtype %s" % (name, info["dtype"]))
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def read_hf(d):
    """Weights under GGUF names (HF orientation is the same: (out, in)) and
    hyper-parameters of a Hugging Face Llama directory. HF applies RoPE in
    the rotate_half layout, so neox = True here (no Q/K permutation)."""
    import json
    import os
    cfg = json.load(open(os.path.join(d, "config.json")))
    st = read_safetensors(os.path.join(d, "model.safetensors"))
    W = {}
    for name, a in st.items():
        if name == "model.embed_tokens.weight":
            W["token_embd.weight"] = a
        elif name == "model.norm.weight":
            W["output_norm.weight"] = a
        elif name == "lm_head.weight":
            W["output.weight"] = a
        elif name.startswith("model.layers."):
            rest = name[len("model.layers."):]
            l, sub = rest.split(".", 1)
            W["blk.%s.%s" % (l, _HF_NAMES[sub])] = a
    n_heads = cfg["num_attention_heads"]
    hd = cfg.get("head_dim", cfg["hidden_size"] // n_heads)
    hp = {"dim": cfg["hidden_size"], "n_layers": cfg["num_hidden_layers"], "n_heads": n_heads,
          "n_kv_heads": cfg.get("num_key_value_heads", n_heads), "head_dim": hd,
          "eps": cfg.get("rms_norm_eps", 1e-6), "rope_base": cfg.get("rope_theta", 10000.0),
          "n_rot": hd, "neox": True}
    return W, hp


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    import os
    if os.path.isdir(sys.argv[1]):
        W, hp = read_hf(sys.argv[1])
    else:
        meta, W = read_gguf(sys.argv[1])
        hp = hparams_from_meta(meta, W)
    tokens = [int(t) for t in open(sys.argv[2]).read().split()]
    logits = forward(W, hp, tokens)
    logits.astype("<f8").tofile(sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
