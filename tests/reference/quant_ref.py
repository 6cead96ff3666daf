#!/usr/bin/python3
"""Extracts quantized tensors from a GGUF file written by llama.cpp together
with the matching F32 rows of the original Hugging Face safetensors, for
tests/test_quant.c. Independent of owl's own GGUF / safetensors readers.

usage: quant_ref.py GGUF SAFETENSORS OUTDIR MAXROWS
Writes OUTDIR/index.txt with one line per tensor:
    gguf_name type_id rows cols file.q file.f32
where file.q holds the first `rows` rows of raw blocks and file.f32 the same
rows as little-endian float32. Only tensors that llama.cpp's converter does
not permute are listed (attn_q / attn_k are reordered per head)."""
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
        lines.append("%s %d %d %d %s.q %s.f32\n" % (name, t, n, cols, stem, stem))
    with open(os.path.join(outdir, "index.txt"), "w") as fo:
        fo.writelines(lines)


if __name__ == "__main__":
    main()
