#!/usr/bin/python3
"""Random Hugging Face model directories (config.json + safetensors) with
reference logits, for owl's Hugging Face reader and converter tests.

    make_hf.py --out DIR [--arch llama|qwen2|mistral] [--dim 64] [--layers 2]
               [--heads 4] [--kv-heads 2] [--head-dim N] [--ffn 96]
               [--vocab 300] [--dtype f32|f16|bf16] [--shards N] [--tied]
               [--rope-theta T] [--rope-linear F] [--rope-llama3 F]
               [--n-tokens 32] [--seed 1]

Writes DIR/config.json, DIR/model.safetensors (or --shards files
model-0000i-of-0000N.safetensors and model.safetensors.index.json), and
beside the directory DIR.tokens.txt (a random token sequence) and
DIR.logits.f64 (float64 little-endian, n_tokens x vocab: the logits of
every position computed by llama_ref.forward from the SAME rounded weights,
with Hugging Face's rotate_half RoPE). The safetensors bytes are written
here with struct/json/NumPy, independently of owl.
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

ST_DTYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def encode(a32, dtype):
    """(bytes, float64 values the bytes hold)."""
    if dtype == "f32":
        a = a32.astype("<f4")
        return a.tobytes(), a.astype(np.float64)
    if dtype == "f16":
        a = a32.astype("<f2")
        return a.tobytes(), a.astype(np.float64)
    u = np.ascontiguousarray(a32, dtype=np.float32).view(np.uint32)
    bits = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype("<u2")
    vals = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return bits.tobytes(), vals


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, st_dtype, shape, bytes); names sorted."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in sorted(tensors):
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, _, raw in sorted(tensors):
            f.write(raw)
    os.replace(path + ".tmp", path)


def llama3_factors(base, n_rot, factor, lo, hi, old_ctx):
    out = []
    lo_wl, hi_wl = old_ctx / lo, old_ctx / hi
    for i in range(n_rot // 2):
        freq = 1.0 / base ** (2.0 * i / n_rot)
        wl = 2.0 * math.pi / freq
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            s = (old_ctx / wl - lo) / (hi - lo)
            out.append(1.0 / ((1.0 - s) / factor + s))
    return np.asarray(out, dtype=np.float32).astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=["llama", "qwen2", "mistral"], default="llama")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None)
    ap.add_argument("--head-dim", type=int, default=None)
    ap.add_argument("--ffn", type=int, default=96)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--dtype", choices=sorted(ST_DTYPE), default="f32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--rope-linear", type=float, default=None)
    ap.add_argument("--rope-llama3", type=float, default=None)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--n-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    kv = a.kv_heads or a.heads
    hd = a.head_dim or a.dim // a.heads
    qd, kvd = a.heads * hd, kv * hd
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)

    # (hf name, gguf name, shape (rows, cols) or (n,), kind)
    plan = [("model.embed_tokens.weight", "token_embd.weight", (a.vocab, a.dim), "mat")]
    for l in range(a.layers):
        hp_, gp = "model.layers.%d." % l, "blk.%d." % l
        plan += [(hp_ + "input_layernorm.weight", gp + "attn_norm.weight", (a.dim,), "norm"),
                 (hp_ + "self_attn.q_proj.weight", gp + "attn_q.weight", (qd, a.dim), "mat"),
                 (hp_ + "self_attn.k_proj.weight", gp + "attn_k.weight", (kvd, a.dim), "mat"),
                 (hp_ + "self_attn.v_proj.weight", gp + "attn_v.weight", (kvd, a.dim), "mat"),
                 (hp_ + "self_attn.o_proj.weight", gp + "attn_output.weight", (a.dim, qd), "mat"),
                 (hp_ + "post_attention_layernorm.weight", gp + "ffn_norm.weight", (a.dim,), "norm"),
                 (hp_ + "mlp.gate_proj.weight", gp + "ffn_gate.weight", (a.ffn, a.dim), "mat"),
                 (hp_ + "mlp.up_proj.weight", gp + "ffn_up.weight", (a.ffn, a.dim), "mat"),
                 (hp_ + "mlp.down_proj.weight", gp + "ffn_down.weight", (a.dim, a.ffn), "mat")]
        if a.arch == "qwen2":
            plan += [(hp_ + "self_attn.q_proj.bias", gp + "attn_q.bias", (qd,), "bias"),
                     (hp_ + "self_attn.k_proj.bias", gp + "attn_k.bias", (kvd,), "bias"),
                     (hp_ + "self_attn.v_proj.bias", gp + "attn_v.bias", (kvd,), "bias")]
    plan.append(("model.norm.weight", "output_norm.weight", (a.dim,), "norm"))
    if not a.tied:
        plan.append(("lm_head.weight", "output.weight", (a.vocab, a.dim), "mat"))

    W, tensors = {}, []
    for hf, gg, shape, kind in plan:
        r = rng.standard_normal(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        if kind == "norm":
            r = 1.0 + 0.1 * r
        elif kind == "bias":
            r = 0.1 * r
        else:
            r = r * np.float32(1.0 / np.sqrt(shape[-1]))
        raw, vals = encode(r.astype(np.float32), a.dtype)
        W[gg] = vals.reshape(shape)
        tensors.append((hf, ST_DTYPE[a.dtype], shape, raw))

    cfg = {"architectures": ["%sForCausalLM" % a.arch.capitalize()], "model_type": a.arch,
           "hidden_size": a.dim, "intermediate_size": a.ffn, "num_attention_heads": a.heads,
           "num_key_value_heads": kv, "num_hidden_layers": a.layers, "rms_norm_eps": a.eps,
           "rope_theta": a.rope_theta, "max_position_embeddings": a.ctx, "vocab_size": a.vocab,
           "tie_word_embeddings": bool(a.tied), "hidden_act": "silu", "torch_dtype": "float32",
           "rope_scaling": None}
    if a.head_dim:
        cfg["head_dim"] = a.head_dim
    if a.arch == "mistral":
        cfg["sliding_window"] = 4096
    hp = {"dim": a.dim, "n_layers": a.layers, "n_heads": a.heads, "n_kv_heads": kv, "head_dim": hd,
          "eps": float(np.float32(a.eps)), "rope_base": float(np.float32(a.rope_theta)), "n_rot": hd,
          "neox": True}
    if a.rope_linear:
        cfg["rope_scaling"] = {"type": "linear", "factor": a.rope_linear}
        hp["rope_scale"] = 1.0 / float(np.float32(a.rope_linear))
    if a.rope_llama3:
        rs = {"rope_type": "llama3", "factor": a.rope_llama3, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 64}
        cfg["rope_scaling"] = rs
        W["rope_freqs.weight"] = llama3_factors(float(np.float32(a.rope_theta)), hd, a.rope_llama3, 1.0, 4.0, 64)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), tensors, {"format": "pt"})
    else:
        weight_map, total = {}, 0
        for s in range(a.shards):
            fname = "model-%05d-of-%05d.safetensors" % (s + 1, a.shards)
            part = tensors[s::a.shards]
            write_safetensors(os.path.join(a.out, fname), part, {"format": "pt"})
            for t in part:
                weight_map[t[0]] = fname
                total += len(t[3])
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    tokens = rng.integers(0, a.vocab, a.n_tokens)
    tokens[0] = 1
    with open(a.out.rstrip("/") + ".tokens.txt", "w") as f:
        f.write(" ".join(str(int(t)) for t in tokens) + "\n")
    llama_ref.forward(W, hp, tokens).astype("<f8").tofile(a.out.rstrip("/") + ".logits.f64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
