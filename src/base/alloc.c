/* Allocation helpers and the arena. */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

void *owl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) owl_errorf(OWL_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *owl_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) owl_errorf(OWL_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *owl_alloc_aligned(size_t n) {
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) {
        owl_errorf(OWL_ERR_NOMEM, "allocation of %zu bytes is too large", n);
        return NULL;
    }
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        owl_errorf(OWL_ERR_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

struct owl_arena_block {
    owl_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *owl_arena_alloc(owl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    owl_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) {
            owl_errorf(OWL_ERR_NOMEM, "out of memory allocating %zu bytes", n);
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *owl_arena_strndup(owl_arena *a, const char *s, size_t n) {
    char *p = owl_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void owl_arena_free(owl_arena *a) {
    owl_arena_block *b = a->head;
    while (b) {
        owl_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
