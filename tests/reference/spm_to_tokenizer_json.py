#!/usr/bin/python3
"""Writes a Hugging Face style tokenizer.json (model BPE with merges, byte
fallback, Prepend/Replace normalizers) for a SentencePiece BPE model, read
with Google's sentencepiece (Debian python3-sentencepiece).

usage: spm_to_tokenizer_json.py MODEL OUT

The merges are derived from the pieces' scores the way Hugging Face's
converter does it: every split of a piece into two pieces of the
vocabulary is a merge whose rank follows the score of the merged piece
(higher first); splits of one piece are ordered by the ids of their parts.
The tests use the result to check owl's tokenizer.json BPE against the
llama.cpp vectors and against sentencepiece itself."""
import json
import sys

import sentencepiece as spm


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sp = spm.SentencePieceProcessor()
    sp.Load(sys.argv[1])
    n = sp.GetPieceSize()
    vocab = {}
    for i in range(n):
        vocab.setdefault(sp.IdToPiece(i), i)
    merges = []
    for piece, pid in vocab.items():
        if sp.IsControl(pid) or sp.IsUnknown(pid) or sp.IsByte(pid):
            continue
        score = sp.GetScore(pid)
        found = []
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                found.append((vocab[left], vocab[right], left, right))
        found.sort()
        merges.extend((score, pid, left, right) for _, _, left, right in found)
    # higher score first; among equal scores, lower id of the merged piece first
    merges.sort(key=lambda m: (-m[0], m[1]))
    added = []
    for i in range(n):
        if sp.IsControl(i) or sp.IsUnknown(i):
            added.append({"id": i, "content": sp.IdToPiece(i), "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": sp.IdToPiece(sp.unk_id()),
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "vocab": vocab,
                  "merges": [[left, right] for _, _, left, right in merges]},
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


main()
