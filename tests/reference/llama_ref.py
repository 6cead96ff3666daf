#!/usr/bin/python3
"""Plain float64 NumPy forward pass of a Llama-style decoder, the reference
that owl's model layer is checked against.

Deliberately simple and independent of owl: its own RMSNorm, RoPE (both
layouts), grouped-query attention with a full causal mask, SwiGLU. It also
holds a small GGUF reader so that it can run on real files.

    llama_ref.py MODEL.gguf TOKENS.txt OUT.f64   # logits of every position
    llama_ref.py HF_DIR TOKENS.txt OUT.f64       # a Hugging Face Llama directory
                                                 # (config.json + model.safetensors)
    llama_ref.py MODEL TOKENS.txt OUT.f64 --lora PEFT_DIR[:SCALE] ...
        with PEFT LoRA adapters merged first: W + SCALE * s * B A in float64
        (s = lora_alpha / r, or / sqrt(r) with use_rslora; rank_pattern and
        alpha_pattern per module); on a GGUF "llama" file the Q/K rows of
        B are permuted as the file's are

Weights are a dict of float64 arrays in the usual math orientation:
W[name] has shape (rows, cols) = (ne[1], ne[0]) of the GGUF tensor.
"""
import struct
import sys

import numpy as np


# ---------------------------------------------------------------- forward

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, n_rot, base, neox, scale=1.0, factors=None, mscale=1.0):
    """x: (T, n_heads, head_dim). Rotates the first n_rot dims of each head.
    neox=False: pairs (2i, 2i+1) (GGUF "llama"); neox=True: pairs
    (i, i + n_rot/2) (Hugging Face rotate_half, GGUF "qwen2").
    Angle of pair i at position p: p * scale * base^(-2i/n_rot) / factors[i]
    (linear scaling; GGUF rope_freqs.weight factors); cos and sin times
    mscale (longrope's attention factor)."""
    out = x.copy()
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)   # (half,)
    if factors is not None:
        inv = inv / factors
    ang = np.asarray(positions, dtype=np.float64)[:, None] * scale * inv[None, :]  # (T, half)
    c = np.cos(ang)[:, None, :] * mscale
    s = np.sin(ang)[:, None, :] * mscale
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


def gelu_tanh(x):
    """gelu with the tanh approximation (HF "gelu_pytorch_tanh")."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def softcap(x, cap):
    return np.tanh(x / cap) * cap


def forward(W, hp, tokens):
    """Logits (T, vocab) of every position of `tokens` (positions 0..T-1).

    Family options in hp (absent: Llama behaviour), as the Hugging Face
    modeling code of each family computes:
      norm_offset     RMSNorm multiplies by (offset + w) (Gemma in HF form: 1)
      embd_scale      embeddings times sqrt(dim) (Gemma)
      act             "silu" (SwiGLU) or "gelu_tanh" (GeGLU, Gemma)
      qk_norm         None, "head" (RMSNorm of each q / k head: Qwen3, Gemma 3)
                      or "full" (of the whole q / k vector: OLMo 2), before RoPE
      pre_norms       attn_norm / ffn_norm before the sublayers (False: OLMo 2)
      post_norms      post_attention_norm / post_ffw_norm on the sublayer outputs
      attn_scale      query scale (default head_dim^-0.5; Gemma 2/3:
                      query_pre_attn_scalar^-0.5)
      attn_softcap    scores -> tanh(s / cap) * cap before the mask (Gemma 2)
      final_softcap   the same on the logits
      sliding_window  W: a query at i sees keys j with i - W < j <= i, on the
                      layers swa_layers[l] (default: all)
      rope_base_swa   RoPE base of the windowed layers (unscaled), Gemma 3
      longrope        (original context, short factors, long factors,
                      attention factor): Phi-3's divisors, the long ones when
                      the sequence is longer than the original context
      fused_qkv / fused_gate_up: attn_qkv (q, k, v rows) / ffn_up (gate rows,
                      then up rows), Phi-3
    """
    dim, n_heads, n_kv, hd = hp["dim"], hp["n_heads"], hp["n_kv_heads"], hp["head_dim"]
    eps, base, n_rot, neox = hp["eps"], hp["rope_base"], hp["n_rot"], hp["neox"]
    off = hp.get("norm_offset", 0.0)
    T = len(tokens)
    pos = np.arange(T)
    qd, kvd = n_heads * hd, n_kv * hd

    def norm(x, name):
        return rmsnorm(x, W[name] + off, eps)

    x = W["token_embd.weight"][np.asarray(tokens)]          # (T, dim)
    if hp.get("embd_scale"):
        x = x * np.sqrt(dim)
    group = n_heads // n_kv
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    window = hp.get("sliding_window", 0)
    swa_mask = causal.copy()
    if window:
        ii, jj = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        swa_mask[ii - jj >= window] = -np.inf
    scale = hp.get("attn_scale", 1.0 / np.sqrt(hd))
    act = gelu_tanh if hp.get("act") == "gelu_tanh" else silu
    for l in range(hp["n_layers"]):
        p = "blk.%d." % l
        local = bool(window) and hp.get("swa_layers", [True] * hp["n_layers"])[l]
        h = norm(x, p + "attn_norm.weight") if hp.get("pre_norms", True) else x
        if hp.get("fused_qkv"):
            qkv = h @ W[p + "attn_qkv.weight"].T
            q, k, v = qkv[:, :qd], qkv[:, qd:qd + kvd], qkv[:, qd + kvd:]
        else:
            q = h @ W[p + "attn_q.weight"].T
            k = h @ W[p + "attn_k.weight"].T
            v = h @ W[p + "attn_v.weight"].T
        if p + "attn_q.bias" in W:
            q = q + W[p + "attn_q.bias"]
        if p + "attn_k.bias" in W:
            k = k + W[p + "attn_k.bias"]
        if p + "attn_v.bias" in W:
            v = v + W[p + "attn_v.bias"]
        if hp.get("qk_norm") == "full":
            q = norm(q, p + "attn_q_norm.weight")
            k = norm(k, p + "attn_k_norm.weight")
        q = q.reshape(T, n_heads, hd)
        k = k.reshape(T, n_kv, hd)
        if hp.get("qk_norm") == "head":
            q = norm(q, p + "attn_q_norm.weight")
            k = norm(k, p + "attn_k_norm.weight")
        rs, rf, rb = hp.get("rope_scale", 1.0), W.get("rope_freqs.weight"), base
        ms = 1.0
        if hp.get("longrope"):
            orig, short, long_, ms = hp["longrope"]
            rf = long_ if T > orig else short
        if local and hp.get("rope_base_swa"):
            rs, rf, rb = 1.0, None, hp["rope_base_swa"]
        q = rope(q, pos, n_rot, rb, neox, rs, rf, ms)
        k = rope(k, pos, n_rot, rb, neox, rs, rf, ms)
        v = v.reshape(T, n_kv, hd)
        mask = swa_mask if local else causal
        att = np.zeros((T, n_heads, hd))
        for hh in range(n_heads):
            g = hh // group
            s = (q[:, hh, :] @ k[:, g, :].T) * scale
            if hp.get("attn_softcap"):
                s = softcap(s, hp["attn_softcap"])
            s = s + mask
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=1, keepdims=True)
            att[:, hh, :] = a @ v[:, g, :]
        o = att.reshape(T, qd) @ W[p + "attn_output.weight"].T
        if hp.get("post_norms"):
            o = norm(o, p + "post_attention_norm.weight")
        x = x + o
        h = norm(x, p + "ffn_norm.weight") if hp.get("pre_norms", True) else x
        if hp.get("fused_gate_up"):
            gu = h @ W[p + "ffn_up.weight"].T
            f = act(gu[:, :gu.shape[1] // 2]) * gu[:, gu.shape[1] // 2:]
        else:
            f = act(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)
        f = f @ W[p + "ffn_down.weight"].T
        if hp.get("post_norms"):
            f = norm(f, p + "post_ffw_norm.weight")
        x = x + f
    x = norm(x, "output_norm.weight")
    out = W["output.weight"] if "output.weight" in W else W["token_embd.weight"]
    logits = x @ out.T
    if hp.get("final_softcap"):
        logits = softcap(logits, hp["final_softcap"])
    return logits


# ---------------------------------------------------------------- GGUF

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """(meta dict, {name: float64 array (ne[1], ne[0]) or 1-D}) of a GGUF
    file with F32 / F16 / BF16 tensors (block-quantized ones dequantized by
    quant_ref.py)."""
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
        else:  # block-quantized: the reference dequantizer of quant_ref.py
            import quant_ref
            if t not in quant_ref.BLOCKS:
                raise ValueError("%s: tensor type %d not supported by the reference" % (name, t))
            be, bb = quant_ref.BLOCKS[t]
            a = quant_ref.dequantize(t, data[b:b + n // be * bb], n).astype(np.float64)
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


_HF_FAMILY_NAMES = {
    "self_attn.qkv_proj.weight": "attn_qkv.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",
}


def read_hf(d):
    """Weights under GGUF names (HF orientation is the same: (out, in)) and
    hyper-parameters of a Hugging Face directory of the families llama,
    mistral, qwen2, qwen3, gemma, gemma2, gemma3(_text), phi3, olmo2, as
    their modeling code uses config.json. Norm weights stay as stored (the
    Gemma offset 1 is hp["norm_offset"]). HF applies RoPE in the rotate_half
    layout, so neox = True here (no Q/K permutation)."""
    import json
    import os
    cfg = json.load(open(os.path.join(d, "config.json")))
    if isinstance(cfg.get("text_config"), dict):
        cfg = dict(cfg["text_config"], model_type=cfg["text_config"].get("model_type", cfg["model_type"]))
    mt = cfg["model_type"]
    gemma = mt in ("gemma", "gemma2", "gemma3", "gemma3_text")
    post = mt in ("gemma2", "gemma3", "gemma3_text", "olmo2")
    st = read_safetensors(os.path.join(d, "model.safetensors"))
    W = {}
    for name, a in st.items():
        name = name.replace("language_model.", "", 1) if name.startswith("language_model.") else name
        if name == "model.embed_tokens.weight":
            W["token_embd.weight"] = a
        elif name == "model.norm.weight":
            W["output_norm.weight"] = a
        elif name == "lm_head.weight":
            if not cfg.get("tie_word_embeddings", mt.startswith("gemma")):
                W["output.weight"] = a
        elif name.startswith("model.layers."):
            rest = name[len("model.layers."):]
            l, sub = rest.split(".", 1)
            if sub == "post_attention_layernorm.weight" and post:
                g = "post_attention_norm.weight"
            else:
                g = _HF_NAMES.get(sub) or _HF_FAMILY_NAMES[sub]
            W["blk.%s.%s" % (l, g)] = a
    n_heads = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    n_rot = int(hd * cfg.get("partial_rotary_factor", 1.0))
    n_layers = cfg["num_hidden_layers"]
    hp = {"dim": cfg["hidden_size"], "n_layers": n_layers, "n_heads": n_heads,
          "n_kv_heads": cfg.get("num_key_value_heads") or n_heads, "head_dim": hd,
          "eps": float(np.float32(cfg.get("rms_norm_eps", 1e-6))),
          "rope_base": float(np.float32(cfg.get("rope_theta", 10000.0))),
          "n_rot": n_rot - n_rot % 2, "neox": True}
    rsc = cfg.get("rope_scaling")
    if rsc and (rsc.get("rope_type") or rsc.get("type")) == "linear":
        hp["rope_scale"] = 1.0 / float(np.float32(rsc["factor"]))
    if rsc and (rsc.get("rope_type") or rsc.get("type")) in ("longrope", "su"):
        # transformers' _compute_longrope_parameters: the factor is the ratio
        # of the context lengths, the attention factor sqrt(1 + ln f / ln orig)
        orig = cfg.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        f = cfg["max_position_embeddings"] / orig
        af = rsc.get("attention_factor") or (1.0 if f <= 1.0 else np.sqrt(1 + np.log(f) / np.log(orig)))
        f32 = lambda v: np.asarray(v, dtype=np.float32).astype(np.float64)  # noqa: E731
        hp["longrope"] = (orig, f32(rsc["short_factor"]), f32(rsc["long_factor"]), float(np.float32(af)))
    if gemma:
        hp.update(norm_offset=1.0, embd_scale=True, act="gelu_tanh")
    if post:
        hp["post_norms"] = True
    if mt == "olmo2":
        hp.update(pre_norms=False, qk_norm="full")
    if mt in ("qwen3", "gemma3", "gemma3_text"):
        hp["qk_norm"] = "head"
    if mt == "phi3":
        hp.update(fused_qkv=True, fused_gate_up=True)
    if mt in ("gemma2", "gemma3", "gemma3_text"):
        hp["attn_scale"] = float(cfg.get("query_pre_attn_scalar", 256)) ** -0.5
    if mt == "gemma2":
        hp["attn_softcap"] = cfg.get("attn_logit_softcapping", 50.0)
        hp["final_softcap"] = cfg.get("final_logit_softcapping", 30.0)
    if mt in ("gemma3", "gemma3_text"):
        hp["attn_softcap"] = cfg.get("attn_logit_softcapping")
        hp["final_softcap"] = cfg.get("final_logit_softcapping")
        hp["rope_base_swa"] = float(np.float32(cfg.get("rope_local_base_freq", 10000.0)))
    window = cfg.get("sliding_window")
    qwen = mt in ("qwen2", "qwen3")  # their use_sliding_window defaults to false
    if window and cfg.get("use_sliding_window", not qwen):
        hp["sliding_window"] = window
        if qwen:  # Qwen2Attention: the window on layers >= max_window_layers
            hp["swa_layers"] = [l >= cfg.get("max_window_layers", 28) for l in range(n_layers)]
        elif "layer_types" in cfg:
            hp["swa_layers"] = [t == "sliding_attention" for t in cfg["layer_types"]]
        elif mt == "gemma2":
            hp["swa_layers"] = [l % 2 == 0 for l in range(n_layers)]
        elif mt in ("gemma3", "gemma3_text"):
            pat = cfg.get("sliding_window_pattern", 6)
            hp["swa_layers"] = [(l + 1) % pat != 0 for l in range(n_layers)]
    return W, hp


# ---------------------------------------------------------------- LoRA

_PEFT_GGUF = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
              "qkv_proj": "attn_qkv", "gate_up_proj": "ffn_up"}


def apply_lora(W, hp, adapter_dir, user_scale, permuted):
    """W += user_scale * s * B A for every pair of a PEFT adapter directory.
    permuted: the base holds Q/K rows in llama.cpp's adjacent-pair order."""
    import json
    import math
    import os
    import re
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    st = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    r0, alpha0, rs = cfg["r"], cfg["lora_alpha"], cfg.get("use_rslora", False)

    def pattern(pats, key, default):
        for pat, v in (pats or {}).items():
            if re.match(r"(.*\.)?(%s)$" % pat, key):
                return v
        return default
    if "output.weight" not in W:  # tied: an adapter of embed_tokens leaves the head alone
        W["output.weight"] = W["token_embd.weight"].copy()
    pre = "base_model.model."
    for name in st:
        if not (name.endswith("lora_A.weight") or name.endswith("lora_embedding_A")):
            continue
        key = name[len(pre):].rsplit(".lora_", 1)[0]
        A = st[name]
        B = st[name.replace("lora_A", "lora_B").replace("lora_embedding_A", "lora_embedding_B")]
        r = pattern(cfg.get("rank_pattern"), key, r0)
        al = pattern(cfg.get("alpha_pattern"), key, alpha0)
        s = user_scale * (al / math.sqrt(r) if rs else al / r)
        delta = s * (B @ A)
        if key == "lm_head":
            W["output.weight"] = W["output.weight"] + delta
        elif key == "model.embed_tokens":
            W["token_embd.weight"] = W["token_embd.weight"] + delta.T
        else:
            parts = key.split(".")  # model.layers.N.self_attn|mlp.module
            l, mod = int(parts[2]), parts[4]
            g = "blk.%d.%s.weight" % (l, _PEFT_GGUF[mod])
            if permuted and mod in ("q_proj", "k_proj"):
                heads = hp["n_heads"] if mod == "q_proj" else hp["n_kv_heads"]
                hd = hp["head_dim"]
                delta = delta.reshape(heads, 2, hd // 2, delta.shape[1]).swapaxes(1, 2).reshape(delta.shape)
            W[g] = W[g] + delta


def main():
    args = sys.argv[1:]
    loras = []
    while "--lora" in args:
        i = args.index("--lora")
        spec = args[i + 1]
        path, scale = spec, 1.0
        if ":" in spec:
            head, tail = spec.rsplit(":", 1)
            try:
                scale = float(tail)
                path = head
            except ValueError:
                pass
        loras.append((path, scale))
        del args[i:i + 2]
    if len(args) != 3:
        sys.stderr.write(__doc__)
        return 2
    import os
    if os.path.isdir(args[0]):
        W, hp = read_hf(args[0])
        permuted = False
    else:
        meta, W = read_gguf(args[0])
        hp = hparams_from_meta(meta, W)
        permuted = meta["general.architecture"] == "llama"
    for path, scale in loras:
        apply_lora(W, hp, path, scale, permuted)
    sys.argv[1:] = args
    tokens = [int(t) for t in open(sys.argv[2]).read().split()]
    logits = forward(W, hp, tokens)
    logits.astype("<f8").tofile(sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
