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
    ap.add_argument("--arch", choices=["llama", "qwen2"], default="llama")
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
