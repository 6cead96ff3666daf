#!/usr/bin/python3
"""Extracts quantized tensors from a GGUF file written by llama.cpp together
with the matching F32 rows of the original Hugging Face safetensors, for
tests/test_quant.c, and dequantizes the blocks with NumPy (float64) from the
GGUF block specification. Independent of owl's own readers and kernels.

usage: quant_ref.py GGUF SAFETENSORS OUTDIR MAXROWS
Writes OUTDIR/index.txt with one line per tensor:
    gguf_name type_id rows cols file.q file.f32 file.deq
where file.q holds the first `rows` rows of raw blocks, file.f32 the same
rows of the original as little-endian float32, and file.deq NumPy's
dequantization of file.q (float32). Only tensors that llama.cpp's converter
does not permute are listed (attn_q / attn_k are reordered per head)."""
import json
import os
import struct
import sys

import numpy as np

# GGUF metadata value types: fixed sizes of the scalar ones.
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# ggml type id -> (block elements, block bytes)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}
HF = {"attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
      "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.d, self.p)
        self.p += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.d[self.p:self.p + n].decode("utf-8")
        self.p += n
        return s

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            if et in SCALAR:  # skip arrays of scalars without decoding them
                self.p += SCALAR[et] * n
                return None
            return [self.value(et) for _ in range(n)]
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}[t]
        return self.take(fmt)


def read_gguf(path):
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", path
    r.p = 4
    r.take("I")
    n_t, n_kv = r.take("Q"), r.take("Q")
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        meta[k] = r.value(r.take("I"))
    tensors = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("I")
        dims = [r.take("Q") for _ in range(nd)]
        t, off = r.take("I"), r.take("Q")
        tensors.append((name, dims, t, off))
    align = meta.get("general.alignment") or 32
    base = (r.p + align - 1) // align * align
    return data, base, tensors


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data, 0)[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        assert v["dtype"] == "F32"
        out[k] = np.frombuffer(data, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(v["shape"])
    return out


def f16(b, lo):
    return b[:, lo:lo + 2].copy().view("<f2").astype(np.float64)  # (nblocks, 1)


def nibble_pairs(qs):
    """16 bytes per block -> 32 levels: low nibbles then high nibbles."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)


def bits32(b, lo):
    """bit j of the little-endian u32 at lo, for j < 32"""
    u = b[:, lo:lo + 4].copy().view("<u4").astype(np.int64)
    return (u >> np.arange(32)) & 1


E = np.arange(256)


def k_low2(qs):
    """2-bit fields of Q2_K / Q3_K: element e at shift 2*((e%128)//32) of byte 32*(e//128) + e%32"""
    return (qs[:, 32 * (E // 128) + E % 32].astype(np.int64) >> (2 * ((E % 128) // 32))) & 3


def k_scales_6bit(s):
    """Q4_K / Q5_K: 8 scales and 8 mins of 6 bits packed in 12 bytes"""
    s = s.astype(np.int64)
    sc = np.zeros((s.shape[0], 8), np.int64)
    mn = np.zeros_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def dequantize(t, raw, n):
    be, bb = BLOCKS[t]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, bb)
    if t == 8:  # Q8_0: d, qs[32]
        y = f16(b, 0) * b[:, 2:].view(np.int8)
    elif t == 2:  # Q4_0: d, qs[16]
        y = f16(b, 0) * (nibble_pairs(b[:, 2:18]) - 8)
    elif t == 3:  # Q4_1: d, m, qs[16]
        y = f16(b, 0) * nibble_pairs(b[:, 4:20]) + f16(b, 2)
    elif t == 6:  # Q5_0: d, qh[4], qs[16]
        y = f16(b, 0) * ((nibble_pairs(b[:, 6:22]) | (bits32(b, 2) << 4)) - 16)
    elif t == 7:  # Q5_1: d, m, qh[4], qs[16]
        y = f16(b, 0) * (nibble_pairs(b[:, 8:24]) | (bits32(b, 4) << 4)) + f16(b, 2)
    elif t == 10:  # Q2_K: scales[16], qs[64], d, dmin
        sc = b[:, 0:16].astype(np.int64)[:, E // 16]
        y = f16(b, 80) * (sc & 15) * k_low2(b[:, 16:80]) - f16(b, 82) * (sc >> 4)
    elif t == 11:  # Q3_K: hmask[32], qs[64], scales[12], d
        s = b[:, 96:108].astype(np.int64)
        i = np.arange(16)
        lo4 = np.where(i < 8, s[:, i % 8] & 15, s[:, i % 8] >> 4)
        hi2 = (s[:, 8 + i % 4] >> (2 * (i // 4))) & 3
        sc = (lo4 | (hi2 << 4)) - 32
        h = (b[:, E % 32].astype(np.int64) >> (E // 32)) & 1
        y = f16(b, 108) * sc[:, E // 16] * (k_low2(b[:, 32:96]) - 4 * (1 - h))
    elif t in (12, 13):  # Q4_K: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] before qs
        sc, mn = k_scales_6bit(b[:, 4:16])
        qs = b[:, 16:144] if t == 12 else b[:, 48:176]
        q = (qs[:, 32 * (E // 64) + E % 32].astype(np.int64) >> (4 * ((E % 64) // 32))) & 15
        if t == 13:
            q |= ((b[:, 16 + E % 32].astype(np.int64) >> (E // 32)) & 1) << 4
        y = f16(b, 0) * sc[:, E // 32] * q - f16(b, 2) * mn[:, E // 32]
    elif t == 14:  # Q6_K: ql[128], qh[64], scales[16] int8, d
        n_, k, l = E // 128, (E % 128) // 32, E % 32
        lo = (b[:, 64 * n_ + 32 * (k & 1) + l].astype(np.int64) >> (4 * (k >> 1))) & 15
        hi = (b[:, 128 + 32 * n_ + l].astype(np.int64) >> (2 * k)) & 3
        sc = b[:, 192:208].view(np.int8).astype(np.int64)
        y = f16(b, 208) * sc[:, E // 16] * ((lo | (hi << 4)) - 32)
    else:
        raise ValueError("type %d" % t)
    return y.reshape(-1)[:n]


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in HF:
        return "model.layers.%s.%s.weight" % (parts[1], HF[parts[2]])
    return None


def main():
    gguf, st, outdir, maxrows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(outdir, exist_ok=True)
    data, base, tensors = read_gguf(gguf)
    orig = read_safetensors(st)
    lines = []
    for name, dims, t, off in tensors:
        hn = hf_name(name)
        if hn is None or t not in BLOCKS or len(dims) != 2:
            continue
        cols, rows = dims
        be, bb = BLOCKS[t]
        row_bytes = cols // be * bb
        n = min(rows, maxrows)
        f = orig[hn]
        assert f.shape == (rows, cols), (name, f.shape, dims)
        stem = name.replace(".", "_")
        start = base + off
        with open(os.path.join(outdir, stem + ".q"), "wb") as fo:
            fo.write(data[start:start + n * row_bytes])
        with open(os.path.join(outdir, stem + ".f32"), "wb") as fo:
            fo.write(np.ascontiguousarray(f[:n], dtype="<f4").tobytes())
        deq = dequantize(t, data[start:start + n * row_bytes], n * cols)
        with open(os.path.join(outdir, stem + ".deq"), "wb") as fo:
            fo.write(deq.astype("<f4").tobytes())
        lines.append("%s %d %d %d %s.q %s.f32 %s.deq\n" % (name, t, n, cols, stem, stem, stem))
    with open(os.path.join(outdir, "index.txt"), "w") as fo:
        fo.writelines(lines)


if __name__ == "__main__":
    main()
