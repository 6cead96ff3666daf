#!/usr/bin/python3
"""Independent GGUF reader for tests: prints the file's keys and tensors as
JSON. Written from the format description (little-endian; "GGUF", u32
version, u64 tensor count, u64 key count, keys, tensor infos, aligned data),
sharing nothing with owl's C reader. Each tensor gets the FNV-1a hash of the
bytes found at its place, so a test can compare data without copying it.
ends_after_padding: the file ends where the last tensor's aligned block
ends."""
import json
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
           7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
          13: (256, 176), 14: (256, 210), 15: (256, 292), 24: (1, 1), 25: (1, 2),
          26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}


class Reader:
    def __init__(self, data):
        self.b = data
        self.p = 0

    def take(self, fmt):
        n = struct.calcsize(fmt)
        if self.p + n > len(self.b):
            raise ValueError("truncated at %d" % self.p)
        v = struct.unpack_from(fmt, self.b, self.p)[0]
        self.p += n
        return v

    def string(self):
        n = self.take("<Q")
        if self.p + n > len(self.b):
            raise ValueError("string runs past the end")
        s = self.b[self.p:self.p + n].decode("utf-8")
        self.p += n
        return s

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("<I")
            n = self.take("<Q")
            return [self.value(et) for _ in range(n)]
        v = self.take(SCALARS[t])
        if t == 10 and v >= 1 << 63:
            return str(v)  # past what a C JSON reader keeps as an integer
        return v


def fnv1a(data):
    h = 1469598103934665603
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def main():
    data = open(sys.argv[1], "rb").read()
    r = Reader(data)
    if r.b[:4] != b"GGUF":
        raise ValueError("bad magic")
    r.p = 4
    version = r.take("<I")
    n_tensors = r.take("<Q")
    n_kv = r.take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = r.string()
        t = r.take("<I")
        kv[k] = [t, r.value(t)]
    alignment = kv.get("general.alignment", [4, 32])[1]
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        t = r.take("<I")
        off = r.take("<Q")
        infos.append((name, t, ne, off))
    start = (r.p + alignment - 1) // alignment * alignment
    tensors = []
    end = start
    expected_off = 0  # ggml's readers want each tensor right after the last one's aligned block
    contiguous = True
    for name, t, ne, off in infos:
        n = 1
        for x in ne:
            n *= x
        blk, bb = BLOCKS[t]
        nbytes = n // blk * bb
        a = start + off
        contiguous = contiguous and off == expected_off
        expected_off += (nbytes + alignment - 1) // alignment * alignment
        if a + nbytes > len(data):
            raise ValueError("tensor %s runs past the end" % name)
        end = max(end, a + nbytes)
        tensors.append({"name": name, "type": t, "ne": ne, "offset": off,
                        "abs_offset": a, "fnv1a": fnv1a(data[a:a + nbytes])})
    out = {"version": version, "alignment": alignment, "kv": kv, "tensors": tensors,
           "offsets_contiguous": contiguous,
           "ends_after_padding": (end + alignment - 1) // alignment * alignment == len(data)}
    json.dump(out, sys.stdout, ensure_ascii=False)


main()
