#!/usr/bin/python3
"""Independent safetensors reader (struct + json + NumPy) for owl's tests.

    safetensors_ref.py FILE

prints one line per tensor, sorted by name:

    NAME DTYPE d0,d1,... SUM SUMSQ FIRST LAST

(SUM / SUMSQ: float64 sums of the values; FIRST / LAST: the first and last
element, %.9g), then a line "metadata K=V;..." (sorted) and a line
"header_len N pad_ok B" where pad_ok tells whether the data section starts
8-byte aligned and the header's tail padding is spaces only.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    raw = data[8:8 + n]
    header = json.loads(raw)
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = body[a:b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(buf, "<f4").astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(buf, "<f2").astype(np.float64)
        elif dt == "BF16":
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(dt)
        out[name] = (dt, info["shape"], arr.reshape(info["shape"]) if arr.size else arr)
    stripped = raw.rstrip(b" ")
    pad_ok = (8 + n) % 8 == 0 and stripped.endswith(b"}")
    return out, header.get("__metadata__", {}), n, pad_ok


def main():
    tensors, meta, n, pad_ok = load(sys.argv[1])
    for name in sorted(tensors):
        dt, shape, a = tensors[name]
        flat = a.reshape(-1)
        first = "%.9g" % flat[0] if flat.size else "-"
        last = "%.9g" % flat[-1] if flat.size else "-"
        print("%s %s %s %.17g %.17g %s %s" % (name, dt, ",".join(str(d) for d in shape) or "-",
                                              float(flat.sum()), float((flat * flat).sum()), first, last))
    print("metadata " + ";".join("%s=%s" % (k, meta[k]) for k in sorted(meta)))
    print("header_len %d pad_ok %d" % (n, 1 if pad_ok else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
