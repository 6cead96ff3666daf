#!/usr/bin/python3
"""Breaks a GGUF file on purpose, for bad-input tests (independent of owl's
reader: the header is walked here from the GGUF v3 specification).

usage: gguf_corrupt.py IN OUT ACTION [ARGS]
  type NAME ID    tensor NAME's type id becomes ID (e.g. 99: unknown; 4: a
                  removed ggml type)
  ne0 NAME N      tensor NAME's first dimension becomes N (e.g. a row
                  length its blocks do not divide)
  short NAME K    the file ends K bytes before the end of tensor NAME's data
                  (NAME must be the tensor stored last)
  last            prints the name of the tensor stored last (no OUT written;
                  give - as OUT)
"""
import struct
import sys

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# ggml type id -> (block elements, block bytes)
BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}


def walk(d):
    """Returns (tensors, data_start): tensors maps a name to a dict with the
    byte positions of its type and ne[0] fields, its type, shape and offset."""
    p = 0

    def take(fmt):
        nonlocal p
        v = struct.unpack_from("<" + fmt, d, p)[0]
        p += struct.calcsize("<" + fmt)
        return v

    def string():
        nonlocal p
        n = take("Q")
        s = d[p:p + n]
        p += n
        return s.decode("utf-8", "replace")

    def value(t):
        nonlocal p
        if t == 8:
            string()
        elif t == 9:
            et, n = take("I"), take("Q")
            for _ in range(n):
                value(et)
        else:
            p += SCALAR[t]

    assert d[:4] == b"GGUF", "not a GGUF file"
    p = 4
    take("I")  # version
    nt, nkv = take("Q"), take("Q")
    align = 32
    for _ in range(nkv):
        key = string()
        t = take("I")
        if key == "general.alignment" and t == 4:
            align = struct.unpack_from("<I", d, p)[0]
        value(t)
    tensors = {}
    for _ in range(nt):
        name = string()
        nd = take("I")
        ne0_pos = p
        ne = [take("Q") for _ in range(nd)]
        type_pos = p
        t = take("I")
        off = take("Q")
        tensors[name] = dict(ne=ne, type=t, off=off, type_pos=type_pos, ne0_pos=ne0_pos)
    start = (p + align - 1) // align * align
    return tensors, start


def nbytes(t):
    el, bb = BLOCKS[t["type"]]
    n = 1
    for x in t["ne"]:
        n *= x
    return n // el * bb


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, out, action = sys.argv[1:4]
    d = bytearray(open(src, "rb").read())
    tensors, start = walk(bytes(d))
    if action == "last":
        print(max(tensors, key=lambda k: tensors[k]["off"]))
        return
    name = sys.argv[4]
    t = tensors[name]
    if action == "type":
        struct.pack_into("<I", d, t["type_pos"], int(sys.argv[5]))
    elif action == "ne0":
        struct.pack_into("<Q", d, t["ne0_pos"], int(sys.argv[5]))
    elif action == "short":
        end = start + t["off"] + nbytes(t)
        d = d[:end - int(sys.argv[5])]
    else:
        sys.exit("unknown action " + action)
    open(out, "wb").write(bytes(d))


if __name__ == "__main__":
    main()
