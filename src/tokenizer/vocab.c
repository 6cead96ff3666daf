/* The vocabulary: pieces, scores, types and a piece -> id hash map. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

uint64_t owl_hash_bytes(const void *data, size_t len) {
    /* FNV-1a, 64-bit */
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

owl_status owl_vocab_init(owl_vocab *v, int n, const owl_str *pieces, const float *scores, const int32_t *types) {
    memset(v, 0, sizeof *v);
    if (n <= 0) return owl_errorf(OWL_ERR_FORMAT, "vocabulary is empty");
    if (n > (1 << 28)) return owl_errorf(OWL_ERR_FORMAT, "vocabulary of %d tokens is too large", n);
    v->n = n;
    v->pieces = owl_arena_alloc(&v->arena, sizeof(owl_str) * (size_t)n);
    v->scores = owl_arena_alloc(&v->arena, sizeof(float) * (size_t)n);
    v->types = owl_arena_alloc(&v->arena, sizeof(int32_t) * (size_t)n);
    uint32_t size = 1;
    while (size < (uint32_t)n * 2) size <<= 1;
    v->mask = size - 1;
    v->slots = owl_arena_alloc(&v->arena, sizeof(uint32_t) * size);
    if (!v->pieces || !v->scores || !v->types || !v->slots) {
        owl_vocab_free(v);
        return OWL_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        char *p = owl_arena_strndup(&v->arena, pieces[i].ptr ? pieces[i].ptr : "", pieces[i].len);
        if (!p) {
            owl_vocab_free(v);
            return OWL_ERR_NOMEM;
        }
        v->pieces[i] = (owl_str){p, pieces[i].len};
        v->scores[i] = scores ? scores[i] : 0.0f;
        v->types[i] = types ? types[i] : OWL_TOKTYPE_NORMAL;
        uint32_t h = (uint32_t)owl_hash_bytes(p, pieces[i].len) & v->mask;
        for (;;) {
            uint32_t s = v->slots[h];
            if (s == 0) {
                v->slots[h] = (uint32_t)i + 1;
                break;
            }
            owl_str o = v->pieces[s - 1];
            if (o.len == pieces[i].len && memcmp(o.ptr, p, o.len) == 0) break; /* keep lowest id */
            h = (h + 1) & v->mask;
        }
    }
    return OWL_OK;
}

void owl_vocab_free(owl_vocab *v) {
    owl_arena_free(&v->arena);
    memset(v, 0, sizeof *v);
}

int32_t owl_vocab_find(const owl_vocab *v, const char *s, size_t len) {
    if (!v->slots) return -1;
    uint32_t h = (uint32_t)owl_hash_bytes(s, len) & v->mask;
    for (;;) {
        uint32_t id = v->slots[h];
        if (id == 0) return -1;
        owl_str o = v->pieces[id - 1];
        if (o.len == len && memcmp(o.ptr, s, len) == 0) return (int32_t)id - 1;
        h = (h + 1) & v->mask;
    }
}

owl_status owl_ids_push(owl_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *nv = realloc(ids->v, cap * sizeof *nv);
        if (!nv) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        ids->v = nv;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return OWL_OK;
}
