#!/usr/bin/python3
"""Prints one line per tensor of a GGUF file, "name type_id", and the keys
general.file_type / general.quantization_version as "#key value" lines.
Reads only the header (written from the format description; independent of
owl's reader), so it is fast on big files."""
import struct
import sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def main():
    f = open(sys.argv[1], "rb")

    def take(fmt):
        n = struct.calcsize(fmt)
        b = f.read(n)
        if len(b) != n:
            raise ValueError("truncated")
        return struct.unpack(fmt, b)[0]

    def string():
        return f.read(take("<Q")).decode("utf-8")

    def value(t):
        if t in SCALAR:
            return take(SCALAR[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        raise ValueError("bad type %d" % t)

    if f.read(4) != b"GGUF":
        raise ValueError("not GGUF")
    take("<I")
    n_tensors, n_kv = take("<Q"), take("<Q")
    for _ in range(n_kv):
        k = string()
        v = value(take("<I"))
        if k in ("general.file_type", "general.quantization_version"):
            print("#%s %s" % (k, v))
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        for _ in range(nd):
            take("<Q")
        t = take("<I")
        take("<Q")
        print(name, t)


main()
