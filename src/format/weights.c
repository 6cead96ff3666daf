/* The weights table: tensor name -> dtype, shape and bytes (in a mapping the
 * table keeps, or in its arena), plus the metadata dictionary. */
#include "format/format.h"

#include <stdlib.h>
#include <string.h>

owl_status owl_weights_init(owl_weights *ws, const char *path, const char *format) {
    memset(ws, 0, sizeof *ws);
    if (path && !(ws->path = owl_arena_strndup(&ws->arena, path, strlen(path)))) return OWL_ERR_NOMEM;
    if (format && !(ws->format = owl_arena_strndup(&ws->arena, format, strlen(format)))) {
        owl_arena_free(&ws->arena);
        memset(ws, 0, sizeof *ws);
        return OWL_ERR_NOMEM;
    }
    return OWL_OK;
}

void owl_weights_free(owl_weights *ws) {
    if (!ws) return;
    for (size_t i = 0; i < ws->n_maps; i++) owl_mmap_close(&ws->maps[i]);
    free(ws->maps);
    free(ws->w);
    owl_meta_free(&ws->meta);
    owl_arena_free(&ws->arena); /* path, format, names, owned data */
    memset(ws, 0, sizeof *ws);
}

const owl_weight *owl_weights_find(const owl_weights *ws, const char *name) {
    for (size_t i = 0; i < ws->n; i++)
        if (strcmp(ws->w[i].name, name) == 0) return &ws->w[i];
    return NULL;
}

int64_t owl_weight_nelem(const owl_weight *w) {
    int64_t n = 1;
    for (int i = 0; i < w->n_dims && i < OWL_MAX_DIMS; i++) n *= w->ne[i];
    return n;
}

owl_status owl_weights_add(owl_weights *ws, const char *name, owl_dtype dtype, int n_dims, const int64_t *ne,
                           const void *data, uint64_t nbytes) {
    if (n_dims < 1 || n_dims > OWL_MAX_DIMS)
        return owl_errorf(OWL_ERR_ARG, "tensor '%s': %d dimensions (must be 1..%d)", name, n_dims, OWL_MAX_DIMS);
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 64;
        owl_weight *w = realloc(ws->w, cap * sizeof *w);
        if (!w) return owl_errorf(OWL_ERR_NOMEM, "out of memory growing the weights table to %zu tensors", cap);
        ws->w = w;
        ws->cap = cap;
    }
    char *copy = owl_arena_strndup(&ws->arena, name, strlen(name));
    if (!copy) return OWL_ERR_NOMEM;
    owl_weight *w = &ws->w[ws->n];
    memset(w, 0, sizeof *w);
    w->name = copy;
    w->dtype = dtype;
    w->n_dims = n_dims;
    for (int i = 0; i < OWL_MAX_DIMS; i++) w->ne[i] = i < n_dims ? ne[i] : 1;
    w->data = data;
    w->nbytes = nbytes;
    ws->n++;
    return OWL_OK;
}

owl_status owl_weights_keep_map(owl_weights *ws, owl_mmap *m, const owl_mmap **kept) {
    owl_mmap *maps = realloc(ws->maps, (ws->n_maps + 1) * sizeof *maps);
    if (!maps) return owl_errorf(OWL_ERR_NOMEM, "out of memory keeping the mapping of %s", m->path ? m->path : "?");
    ws->maps = maps;
    maps[ws->n_maps] = *m;
    memset(m, 0, sizeof *m);
    if (kept) *kept = &maps[ws->n_maps];
    ws->n_maps++;
    return OWL_OK;
}
