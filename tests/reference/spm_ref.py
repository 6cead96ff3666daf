#!/usr/bin/python3
"""Reference token ids from Google's sentencepiece (Debian python3-sentencepiece)
for generated strings: ASCII words, runs of spaces, control characters,
accents, CJK, emoji and mixtures, plus slices of a text file if given.

usage: spm_ref.py MODEL OUT [N] [SEED] [TEXTFILE]
OUT gets one line per case: the UTF-8 text in hex, a tab, the ids separated
by spaces (no BOS).

usage: spm_ref.py train TEXTFILE PREFIX VARIANT
trains a small BPE model PREFIX.model on the first 200 kB of TEXTFILE with
sentencepiece's trainer (identity normalization). VARIANT "unk": no byte
fallback, user-defined and control symbols, extra whitespace removed;
VARIANT "bytes": byte fallback, no dummy prefix, whitespace kept.

usage: spm_ref.py unused MODEL OUT EVERY
rewrites MODEL with every EVERY-th normal piece of two or more characters
marked UNUSED (sentencepiece merges them, then splits them back)."""
import random
import sys

import sentencepiece as spm

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " ",
    "     ",
    ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "\t\n\r\x0b\x0c\x01\x02\x1b\x7f",
    "éèêëàâäôöûüçñÉÀßøåæœ",
    "日本語中文字符测试東京漢字한국어",
    "😀😁😂🤣😃👍🏽🦉🚀✨❤️\u200d",
    "аБвГдЕжЗийКлМнОпРсТуФхЦчШщЪыЬэЮя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "\u0301\u0308\u200b\u00a0\u2581\u3000\ufeff",
    "ﬁ①Ⅷ㎏ｶﾞ",
]
WORDS = ["the", "Hello", "world", " of", "tokenizer", "<s>", "</s>", "<unk>", "<0x41>", "▁", "  ", "\n\n",
         "don't", "1234567", "3.14159", "http://example.com/a?b=c", "llama.cpp", "🦙", "owl", "<tool>", "[SEP]",
         "<ctl>", "   "]


def gen(rng, n):
    cases = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                parts.append(rng.choice(WORDS))
            else:
                alpha = rng.choice(ALPHABETS)
                parts.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 8))))
        s = "".join(parts)
        if rng.random() < 0.2:
            s = " " * rng.randint(1, 4) + s
        if rng.random() < 0.2:
            s = s + " " * rng.randint(1, 4)
        cases.append(s)
    return cases


def train(textfile, prefix, variant):
    with open(textfile, encoding="utf-8") as f:
        text = f.read(200000)
    opts = dict(model_prefix=prefix, model_type="bpe", normalization_rule_name="identity", minloglevel=2,
                num_threads=1, sentence_iterator=iter(text.splitlines()))
    if variant == "unk":
        opts.update(vocab_size=600, character_coverage=0.98, byte_fallback=False,
                    user_defined_symbols=["<tool>", "owl", "[SEP]"], control_symbols=["<ctl>"])
    else:
        opts.update(vocab_size=800, character_coverage=0.995, byte_fallback=True, add_dummy_prefix=False,
                    remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)
    spm.SentencePieceTrainer.train(**opts)


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fields(b):
    """(number, wire type, raw bytes of the whole field, payload) of a message."""
    i = 0
    while i < len(b):
        start = i
        key, i = varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
            payload = v
        elif wire == 2:
            n, i = varint(b, i)
            payload = b[i:i + n]
            i += n
        elif wire == 5:
            payload = b[i:i + 4]
            i += 4
        elif wire == 1:
            payload = b[i:i + 8]
            i += 8
        else:
            raise ValueError("wire type %d" % wire)
        yield num, wire, b[start:i], payload


def mark_unused(model, out, every):
    with open(model, "rb") as f:
        data = f.read()
    res = bytearray()
    k = 0
    for num, wire, raw, payload in fields(data):
        if num == 1 and wire == 2:
            sub = list(fields(payload))
            piece = [p for n, w, r, p in sub if n == 1][0].decode("utf-8", "replace")
            types = [p for n, w, r, p in sub if n == 3]
            if (not types or types[0] == 1) and len(piece) >= 2:
                k += 1
                if k % every == 0:
                    body = b"".join(r for n, w, r, p in sub if n != 3) + b"\x18\x05"
                    raw = b"\x0a" + put_varint(len(body)) + body
        res += raw
    with open(out, "wb") as f:
        f.write(res)


def main():
    if sys.argv[1] == "unused":
        mark_unused(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    model, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1234
    rng = random.Random(seed)
    cases = gen(rng, n)
    if len(sys.argv) > 5:
        with open(sys.argv[5], encoding="utf-8") as f:
            text = f.read()
        for _ in range(max(1, n // 10)):
            a = rng.randrange(0, max(1, len(text) - 2000))
            cases.append(text[a:a + rng.randint(1, 2000)])
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(out, "w", encoding="ascii") as f:
        for s in cases:
            ids = sp.encode(s)
            f.write(s.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids) + "\n")


if __name__ == "__main__":
    main()
