#!/usr/bin/python3
"""Random Llama / Qwen2-style models written as GGUF v3, with reference logits.

Writes PREFIX.gguf (weights, hyper-parameters, a minimal SentencePiece-style
vocabulary), and unless --no-ref also PREFIX.tokens.txt (a random token
sequence) and PREFIX.logits.f64 (float64 little-endian, n_tokens x vocab: the
logits at every position, computed by llama_ref.py from the SAME rounded
F16/BF16 weights the file holds).

The GGUF bytes are written here with struct/numpy (not with owl), tensor by
tensor, so that the big benchmark presets never hold the whole model:

    make_model.py --out /tmp/m --dim 64 --heads 4 --kv-heads 2 --dtype f16 --arch qwen2 --tied
    make_model.py --out /tmp/b110m --preset 110m --dtype f16     # stories110M's shape, tied
    make_model.py --out /tmp/tiny --preset tinyllama --dtype bf16 # TinyLlama 1.1B's shape

Other families (--arch mistral, qwen3, gemma, gemma2, gemma3, phi3, olmo2)
are written as a Hugging Face directory PREFIX.hf/ (config.json with the
family's fields + model.safetensors, as the modeling code reads them) AND
as PREFIX.gguf in llama.cpp's layout for the family (mistral: arch "llama",
Q/K rows permuted; Gemma norms stored as 1 + w; keys owl adds where
llama.cpp hard-codes a value: attention.scale, attention.sliding_window_pattern,
rope.freq_base_swa); the reference logits are computed by llama_ref.py
from the HF directory (read back from disk, Hugging Face semantics):

    make_model.py --out /tmp/g2 --arch gemma2 --window 16 --layers 3
    make_model.py --out /tmp/p3 --arch phi3 --partial-rotary 0.5 --window 16

Options that break the file on purpose (for bad-input tests):
--arch-name NAME (general.architecture and key prefix), --drop TENSOR,
--bad-shape TENSOR (one extra row), --set KEY=TYPE:VALUE, --unset KEY.
"""
import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
DTYPES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16}
ALIGN = 32

PRESETS = {
    "110m": dict(dim=768, layers=12, heads=12, kv_heads=12, ffn=2048, vocab=32000, ctx=2048, tied=True),
    "tinyllama": dict(dim=2048, layers=22, heads=32, kv_heads=4, ffn=5632, vocab=32000, ctx=2048),
}

# GGUF metadata value types
T_U32, T_I32, T_F32, T_STR, T_ARR = 4, 5, 6, 8, 9


def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, t, v):
    out = gguf_str(key) + struct.pack("<I", t)
    if t == T_U32:
        return out + struct.pack("<I", v)
    if t == T_I32:
        return out + struct.pack("<i", v)
    if t == T_F32:
        return out + struct.pack("<f", v)
    if t == T_STR:
        return out + gguf_str(v)
    raise ValueError(t)


def kv_arr(key, et, values):
    out = gguf_str(key) + struct.pack("<IIQ", T_ARR, et, len(values))
    if et == T_STR:
        return out + b"".join(gguf_str(s) for s in values)
    if et == T_F32:
        return out + np.asarray(values, "<f4").tobytes()
    if et == T_I32:
        return out + np.asarray(values, "<i4").tobytes()
    raise ValueError(et)


def to_bf16_bits(a32):
    """float32 array -> uint16 bf16 bits, round to nearest even."""
    u = np.ascontiguousarray(a32, dtype=np.float32).view(np.uint32)
    u = (u + (0x7FFF + ((u >> 16) & 1))) >> 16  # finite values: no uint32 overflow
    return u.astype(np.uint16)


def encode(a32, gtype):
    """(bytes, float64 values the bytes hold)."""
    if gtype == GGML_F32:
        a = a32.astype("<f4")
        return a.tobytes(), a
    if gtype == GGML_F16:
        a = a32.astype("<f2")
        return a.tobytes(), a
    bits = to_bf16_bits(a32)
    vals = (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.astype("<u2").tobytes(), vals


def elem_bytes(gtype):
    return 4 if gtype == GGML_F32 else 2


def tensor_plan(a):
    """[(name, shape (rows, cols) or (n,), gtype, kind)] in file order."""
    dim, hd = a.dim, a.dim // a.heads
    qd, kvd = a.heads * hd, a.kv_heads * hd
    big, small = DTYPES[a.dtype], DTYPES[a.norm_dtype]
    plan = [("token_embd.weight", (a.vocab, dim), big, "embd")]
    for l in range(a.layers):
        p = "blk.%d." % l
        plan += [(p + "attn_norm.weight", (dim,), small, "norm"),
                 (p + "attn_q.weight", (qd, dim), big, "mat"),
                 (p + "attn_k.weight", (kvd, dim), big, "mat"),
                 (p + "attn_v.weight", (kvd, dim), big, "mat")]
        if a.arch == "qwen2" or a.bias:
            plan += [(p + "attn_q.bias", (qd,), GGML_F32, "bias"),
                     (p + "attn_k.bias", (kvd,), GGML_F32, "bias"),
                     (p + "attn_v.bias", (kvd,), GGML_F32, "bias")]
        plan += [(p + "attn_output.weight", (dim, qd), big, "mat"),
                 (p + "ffn_norm.weight", (dim,), small, "norm"),
                 (p + "ffn_gate.weight", (a.ffn, dim), big, "mat"),
                 (p + "ffn_up.weight", (a.ffn, dim), big, "mat"),
                 (p + "ffn_down.weight", (dim, a.ffn), big, "mat")]
    if a.rope_freqs:
        plan.append(("rope_freqs.weight", (hd // 2,), GGML_F32, "freqs"))
    plan.append(("output_norm.weight", (dim,), small, "norm"))
    if not a.tied:
        plan.append(("output.weight", (a.vocab, dim), big, "mat"))
    out = []
    for name, shape, gt, kind in plan:
        if name == a.drop:
            continue
        if name == a.bad_shape:
            shape = (shape[0] + 1,) + tuple(shape[1:])
        out.append((name, shape, gt, kind))
    return out


def random_tensor(rng, shape, kind):
    n = int(np.prod(shape))
    r = rng.standard_normal(n, dtype=np.float32).reshape(shape)
    if kind == "norm":
        return 1.0 + 0.1 * r
    if kind == "bias":
        return 0.1 * r
    if kind == "freqs":  # rope frequency divisors, as Llama 3.1 files carry
        return 1.0 + 7.0 * np.abs(r) / (1.0 + np.abs(r))
    # embeddings and matrices ~ N(0, 1/cols): a tied head gives logits of
    # order 1, and every projection keeps the scale of its input
    return r * np.float32(1.0 / np.sqrt(shape[-1]))


def vocab_pieces(n, specials=()):
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + list(specials)
    types = [2, 3, 3] + [6] * 256 + [3] * len(specials)
    i = 0
    while len(pieces) < n:
        pieces.append("\u2581t%d" % i)
        types.append(1)
        i += 1
    pieces, types = pieces[:n], types[:n]
    k = 259 + len(specials)
    scores = [0.0] * min(n, k) + [-float(j) for j in range(max(0, n - k))]
    return pieces, scores, types


def header(a, plan):
    arch = a.arch_name or a.arch
    meta = [kv("general.architecture", T_STR, arch),
            kv("general.name", T_STR, "owl random %s" % a.arch),
            kv("general.alignment", T_U32, ALIGN),
            kv(arch + ".context_length", T_U32, a.ctx),
            kv(arch + ".embedding_length", T_U32, a.dim),
            kv(arch + ".block_count", T_U32, a.layers),
            kv(arch + ".feed_forward_length", T_U32, a.ffn),
            kv(arch + ".attention.head_count", T_U32, a.heads),
            kv(arch + ".attention.head_count_kv", T_U32, a.kv_heads),
            kv(arch + ".attention.layer_norm_rms_epsilon", T_F32, a.eps)]
    if a.rope_base is not None:
        meta.append(kv(arch + ".rope.freq_base", T_F32, a.rope_base))
    if a.rope_linear is not None:
        meta.append(kv(arch + ".rope.scaling.type", T_STR, "linear"))
        meta.append(kv(arch + ".rope.scaling.factor", T_F32, a.rope_linear))
    if not a.no_tokenizer:
        pieces, scores, types = vocab_pieces(a.vocab, a.special)
        meta += [kv("tokenizer.ggml.model", T_STR, "llama"),
                 kv_arr("tokenizer.ggml.tokens", T_STR, pieces),
                 kv_arr("tokenizer.ggml.scores", T_F32, scores),
                 kv_arr("tokenizer.ggml.token_type", T_I32, types),
                 kv("tokenizer.ggml.unknown_token_id", T_U32, 0),
                 kv("tokenizer.ggml.bos_token_id", T_U32, 1),
                 kv("tokenizer.ggml.eos_token_id", T_U32, 2)]
    for spec in a.set:  # KEY=TYPE:VALUE, replacing or adding a key
        key, _, tv = spec.partition("=")
        t, _, v = tv.partition(":")
        enc = {"u32": lambda: kv(key, T_U32, int(v)), "i32": lambda: kv(key, T_I32, int(v)),
               "f32": lambda: kv(key, T_F32, float(v)), "str": lambda: kv(key, T_STR, v)}[t]()
        meta = [m for m in meta if not m.startswith(gguf_str(key))] + [enc]
    for key in a.unset:
        meta = [m for m in meta if not m.startswith(gguf_str(key))]
    infos = []
    offset = 0
    offsets = []
    for name, shape, gt, _ in plan:
        ne = list(reversed(shape))
        infos.append(gguf_str(name) + struct.pack("<I", len(ne)) +
                     b"".join(struct.pack("<Q", d) for d in ne) +
                     struct.pack("<IQ", gt, offset))
        offsets.append(offset)
        offset += int(np.prod(shape)) * elem_bytes(gt)
        offset = (offset + ALIGN - 1) // ALIGN * ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(plan), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * ((-len(head)) % ALIGN)
    return head, offsets


# ---------------------------------------------------------------- families

FAMILIES = ["mistral", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "olmo2"]


def family_plan(a, hd):
    """[(hf name, gguf name, shape, kind)]: kind norm / gnorm (HF-raw norm) / mat / embd."""
    f = a.arch
    gemma = f.startswith("gemma")
    post = f in ("gemma2", "gemma3", "olmo2")
    dim, qd, kvd = a.dim, a.heads * hd, a.kv_heads * hd
    nk = "gnorm" if gemma else "norm"
    plan = [("model.embed_tokens.weight", "token_embd.weight", (a.vocab, dim), "embd")]
    for l in range(a.layers):
        h, g = "model.layers.%d." % l, "blk.%d." % l
        if f != "olmo2":
            plan.append((h + "input_layernorm.weight", g + "attn_norm.weight", (dim,), nk))
        if f == "phi3":
            plan.append((h + "self_attn.qkv_proj.weight", g + "attn_qkv.weight", (qd + 2 * kvd, dim), "mat"))
        else:
            plan += [(h + "self_attn.q_proj.weight", g + "attn_q.weight", (qd, dim), "mat"),
                     (h + "self_attn.k_proj.weight", g + "attn_k.weight", (kvd, dim), "mat"),
                     (h + "self_attn.v_proj.weight", g + "attn_v.weight", (kvd, dim), "mat")]
        if f in ("qwen3", "gemma3"):
            plan += [(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", (hd,), nk),
                     (h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", (hd,), nk)]
        if f == "olmo2":
            plan += [(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", (qd,), nk),
                     (h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", (kvd,), nk)]
        plan.append((h + "self_attn.o_proj.weight", g + "attn_output.weight", (dim, qd), "mat"))
        if post:
            plan.append((h + "post_attention_layernorm.weight", g + "post_attention_norm.weight", (dim,), nk))
            if f != "olmo2":
                plan.append((h + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", (dim,), nk))
            plan.append((h + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", (dim,), nk))
        else:
            plan.append((h + "post_attention_layernorm.weight", g + "ffn_norm.weight", (dim,), nk))
        if f == "phi3":
            plan.append((h + "mlp.gate_up_proj.weight", g + "ffn_up.weight", (2 * a.ffn, dim), "mat"))
        else:
            plan += [(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", (a.ffn, dim), "mat"),
                     (h + "mlp.up_proj.weight", g + "ffn_up.weight", (a.ffn, dim), "mat")]
        plan.append((h + "mlp.down_proj.weight", g + "ffn_down.weight", (dim, a.ffn), "mat"))
    plan.append(("model.norm.weight", "output_norm.weight", (dim,), nk))
    if not a.tied:
        plan.append(("lm_head.weight", "output.weight", (a.vocab, dim), "mat"))
    return plan


def permute_rows(w, n_heads, hd):
    """rotate_half row order -> adjacent pairs (llama.cpp's Q/K permutation
    for GGUF "llama"): row s*hd/2 + i of each head goes to row 2i + s."""
    return w.reshape(n_heads, 2, hd // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def make_family(a):
    import json
    import make_hf  # noqa: E402  (its safetensors writer)
    f = a.arch
    gemma = f.startswith("gemma")
    if a.kv_heads is None:
        a.kv_heads = a.heads
    hd = a.head_dim or a.dim // a.heads
    if a.tied is False and gemma:
        a.tied = True  # Gemma ties its head
    rng = np.random.default_rng(a.seed)
    plan = family_plan(a, hd)
    hfdir = a.out + ".hf"
    os.makedirs(hfdir, exist_ok=True)
    st_tensors, gguf_tensors = [], []
    st_dt = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[a.dtype]
    for hname, gname, shape, kind in plan:
        r = random_tensor(rng, shape, "norm" if kind == "norm" else "mat")
        if kind == "gnorm":
            r = (0.1 * rng.standard_normal(int(np.prod(shape)), dtype=np.float32)).reshape(shape)
        raw, vals = make_hf.encode(r.astype(np.float32), a.dtype if kind in ("mat", "embd") else "f32")
        st_tensors.append((hname, st_dt if kind in ("mat", "embd") else "F32", shape, raw))
        g = vals.reshape(shape).astype(np.float32)
        if kind == "gnorm":
            g = (g + np.float32(1.0)).astype(np.float32)  # llama.cpp's converter stores 1 + w
        if f == "mistral" and gname.endswith(("attn_q.weight", "attn_k.weight")):
            g = permute_rows(g, a.heads if gname.endswith("attn_q.weight") else a.kv_heads, hd)
        gguf_tensors.append((gname, g, kind in ("mat", "embd")))
    make_hf.write_safetensors(os.path.join(hfdir, "model.safetensors"), st_tensors, {"format": "pt"})

    mt = {"gemma3": "gemma3_text"}.get(f, f)
    cfg = {"architectures": ["X"], "model_type": mt, "hidden_size": a.dim, "intermediate_size": a.ffn,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "num_hidden_layers": a.layers,
           "rms_norm_eps": a.eps, "max_position_embeddings": a.ctx, "vocab_size": a.vocab,
           "tie_word_embeddings": bool(a.tied), "torch_dtype": "float32"}
    rope_base = a.rope_base or {"qwen3": 1e6, "gemma3": 1e6, "olmo2": 5e5}.get(f, 10000.0)
    cfg["rope_theta"] = rope_base
    if a.head_dim:
        cfg["head_dim"] = a.head_dim
    if gemma:
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
    if f in ("gemma2", "gemma3"):
        cfg["query_pre_attn_scalar"] = a.q_scalar or hd
    if f == "gemma2":
        caps = [None, None] if a.softcap == "none" else [float(x) for x in a.softcap.split(",")]
        cfg.update(attn_logit_softcapping=caps[0], final_logit_softcapping=caps[1])
    if f == "gemma3":
        cfg.update(rope_local_base_freq=10000.0, sliding_window_pattern=a.swa_pattern or 6,
                   rope_scaling={"rope_type": "linear", "factor": 2.0})
    if a.window:
        cfg["sliding_window"] = a.window
    if f == "gemma3" and a.layer_types:  # as newer transformers write it
        pat = cfg.pop("sliding_window_pattern")
        cfg["layer_types"] = ["sliding_attention" if (l + 1) % pat else "full_attention" for l in range(a.layers)]
    if f == "phi3" and a.partial_rotary:
        cfg["partial_rotary_factor"] = a.partial_rotary
    lr = None
    if f == "phi3" and a.longrope:
        n_rot = int(hd * (a.partial_rotary or 1.0))
        n_rot -= n_rot % 2
        lr = [np.float32(1.0 + 3.0 * rng.random(n_rot // 2)) for _ in range(2)]
        cfg["original_max_position_embeddings"] = a.longrope
        cfg["rope_scaling"] = {"type": "longrope", "short_factor": [float(x) for x in lr[0]],
                               "long_factor": [float(x) for x in lr[1]]}
    for k in a.cfg_unset:
        cfg.pop(k, None)
    with open(os.path.join(hfdir, "config.json"), "w") as fp:
        json.dump(cfg, fp, indent=2)

    # GGUF: llama.cpp's keys for the family
    arch = "llama" if f == "mistral" else f
    meta = [kv("general.architecture", T_STR, arch), kv("general.name", T_STR, "owl random " + f),
            kv("general.alignment", T_U32, ALIGN), kv(arch + ".context_length", T_U32, a.ctx),
            kv(arch + ".embedding_length", T_U32, a.dim), kv(arch + ".block_count", T_U32, a.layers),
            kv(arch + ".feed_forward_length", T_U32, a.ffn),
            kv(arch + ".attention.head_count", T_U32, a.heads),
            kv(arch + ".attention.head_count_kv", T_U32, a.kv_heads),
            kv(arch + ".attention.layer_norm_rms_epsilon", T_F32, a.eps),
            kv(arch + ".rope.freq_base", T_F32, rope_base)]
    if a.head_dim:
        meta += [kv(arch + ".attention.key_length", T_U32, hd), kv(arch + ".attention.value_length", T_U32, hd)]
    if f == "phi3" and a.partial_rotary:
        n_rot = int(hd * a.partial_rotary)
        meta.append(kv(arch + ".rope.dimension_count", T_U32, n_rot - n_rot % 2))
    if a.window and (f != "qwen3" or cfg.get("use_sliding_window")):
        meta.append(kv(arch + ".attention.sliding_window", T_U32, a.window))
    if lr is not None:  # llama.cpp's tensors and keys for longrope
        ratio = a.ctx / a.longrope
        af = 1.0 if ratio <= 1 else float(np.sqrt(1 + np.log(ratio) / np.log(a.longrope)))
        meta += [kv(arch + ".rope.scaling.attn_factor", T_F32, af),
                 kv(arch + ".rope.scaling.original_context_length", T_U32, a.longrope)]
        gguf_tensors += [("rope_factors_short.weight", lr[0], False), ("rope_factors_long.weight", lr[1], False)]
    if f in ("gemma2", "gemma3"):
        meta.append(kv(arch + ".attention.scale", T_F32, float(cfg["query_pre_attn_scalar"]) ** -0.5))
    if f == "gemma2":
        meta += [kv(arch + ".attn_logit_softcapping", T_F32, cfg["attn_logit_softcapping"] or 0.0),
                 kv(arch + ".final_logit_softcapping", T_F32, cfg["final_logit_softcapping"] or 0.0)]
    if f == "gemma3":
        meta += [kv(arch + ".rope.scaling.type", T_STR, "linear"), kv(arch + ".rope.scaling.factor", T_F32, 2.0)]
        if a.swa_pattern:
            meta.append(kv(arch + ".attention.sliding_window_pattern", T_U32, a.swa_pattern))
    pieces, scores, types = vocab_pieces(a.vocab)
    meta += [kv("tokenizer.ggml.model", T_STR, "llama"), kv_arr("tokenizer.ggml.tokens", T_STR, pieces),
             kv_arr("tokenizer.ggml.scores", T_F32, scores), kv_arr("tokenizer.ggml.token_type", T_I32, types),
             kv("tokenizer.ggml.bos_token_id", T_U32, 1), kv("tokenizer.ggml.eos_token_id", T_U32, 2)]
    for spec in a.set:  # KEY=TYPE:VALUE, replacing or adding a key
        key, _, tv = spec.partition("=")
        t, _, v = tv.partition(":")
        enc = {"u32": lambda: kv(key, T_U32, int(v)), "f32": lambda: kv(key, T_F32, float(v)),
               "str": lambda: kv(key, T_STR, v)}[t]()
        meta = [m for m in meta if not m.startswith(gguf_str(key))] + [enc]
    for key in a.unset:
        meta = [m for m in meta if not m.startswith(gguf_str(key))]
    gguf_tensors = [t for t in gguf_tensors if t[0] != a.drop]
    gt_big = DTYPES[a.dtype]
    infos, blobs, off = [], [], 0
    for name, g, big in gguf_tensors:
        gt = gt_big if big else GGML_F32
        raw, _ = encode(g, gt)
        ne = list(reversed(g.shape))
        infos.append(gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) +
                     struct.pack("<IQ", gt, off))
        raw += b"\0" * ((-len(raw)) % ALIGN)
        blobs.append(raw)
        off += len(raw)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(gguf_tensors), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(a.out + ".gguf", "wb") as fp:
        fp.write(head + b"".join(blobs))

    if a.no_ref:
        return 0
    tokens = rng.integers(0, a.vocab, a.n_tokens)
    tokens[0] = 1
    with open(a.out + ".tokens.txt", "w") as fp:
        fp.write(" ".join(str(int(t)) for t in tokens) + "\n")
    W, hp = llama_ref.read_hf(hfdir)
    llama_ref.forward(W, hp, tokens).astype("<f8").tofile(a.out + ".logits.f64")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output prefix")
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None)
    ap.add_argument("--ffn", type=int, default=96)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--norm-dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--tied", action="store_true", help="no output.weight: the embedding is the output head")
    ap.add_argument("--arch", choices=["llama", "qwen2"] + FAMILIES, default="llama")
    ap.add_argument("--head-dim", type=int, default=None, help="families: explicit head_dim / key_length")
    ap.add_argument("--window", type=int, default=0, help="families: sliding window")
    ap.add_argument("--swa-pattern", type=int, default=None, help="gemma3: sliding_window_pattern")
    ap.add_argument("--partial-rotary", type=float, default=None, help="phi3: partial_rotary_factor")
    ap.add_argument("--q-scalar", type=float, default=None, help="gemma2/3: query_pre_attn_scalar")
    ap.add_argument("--softcap", default="50,30", help="gemma2: attention and final logit soft-caps")
    ap.add_argument("--layer-types", action="store_true", help="gemma3: layer_types instead of the pattern")
    ap.add_argument("--longrope", type=int, default=None, help="phi3: longrope with this original context")
    ap.add_argument("--cfg-unset", action="append", default=[], help="families: config.json field to leave out")
    ap.add_argument("--rope-base", type=float, default=None, help="default: key absent (llama), 1e6 (qwen2)")
    ap.add_argument("--bias", action="store_true", help="Q/K/V biases (always with --arch qwen2)")
    ap.add_argument("--rope-freqs", action="store_true", help="add rope_freqs.weight (frequency divisors)")
    ap.add_argument("--rope-linear", type=float, default=None, help="linear RoPE scaling factor")
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-tokens", type=int, default=64)
    ap.add_argument("--no-ref", action="store_true", help="write only the GGUF")
    ap.add_argument("--no-tokenizer", action="store_true")
    ap.add_argument("--arch-name", default=None)
    ap.add_argument("--drop", default=None)
    ap.add_argument("--bad-shape", default=None)
    ap.add_argument("--set", action="append", default=[], help="KEY=TYPE:VALUE (TYPE u32, i32, f32, str)")
    ap.add_argument("--special", action="append", default=[],
                    help="a control token (e.g. <|im_end|>) after the byte tokens (ids 259, 260, ...)")
    ap.add_argument("--unset", action="append", default=[], help="KEY to leave out")
    a = ap.parse_args()
    if a.arch in FAMILIES:
        return make_family(a)
    if a.preset:
        for k, v in PRESETS[a.preset].items():
            setattr(a, k, v)
        a.no_ref = True
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.rope_base is None and a.arch == "qwen2":
        a.rope_base = 1e6
    if a.dim % a.heads or a.heads % a.kv_heads or a.vocab < 259 + len(a.special):
        ap.error("need dim %% heads == 0, heads %% kv_heads == 0, vocab >= 259 + number of --special")

    plan = tensor_plan(a)
    head, offsets = header(a, plan)
    rng = np.random.default_rng(a.seed)
    W = {}
    path = a.out + ".gguf"
    with open(path + ".tmp", "wb") as f:
        f.write(head)
        base = len(head)
        for (name, shape, gt, kind), off in zip(plan, offsets):
            raw, vals = encode(random_tensor(rng, shape, kind), gt)
            f.seek(base + off)
            f.write(raw)
            if not a.no_ref:
                W[name] = vals.astype(np.float64)
            del raw, vals
        end = f.tell()
        f.write(b"\0" * ((-end) % ALIGN))
    os.replace(path + ".tmp", path)

    if a.no_ref:
        return 0
    hd = a.dim // a.heads
    hp = {"dim": a.dim, "n_layers": a.layers, "n_heads": a.heads, "n_kv_heads": a.kv_heads,
          "head_dim": hd, "eps": float(np.float32(a.eps)),
          "rope_base": float(np.float32(a.rope_base)) if a.rope_base is not None else 10000.0,
          "n_rot": hd, "neox": a.arch == "qwen2",
          "rope_scale": 1.0 / float(np.float32(a.rope_linear)) if a.rope_linear else 1.0}
    tokens = rng.integers(0, a.vocab, a.n_tokens)
    tokens[0] = 1
    with open(a.out + ".tokens.txt", "w") as f:
        f.write(" ".join(str(int(t)) for t in tokens) + "\n")
    logits = llama_ref.forward(W, hp, tokens)
    logits.astype("<f8").tofile(a.out + ".logits.f64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
