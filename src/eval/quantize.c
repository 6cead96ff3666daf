/* Quantizing a weights table into a GGUF file: each tensor gets the type the
 * mix chooses (quant_mix.c); its rows are converted to float and quantized
 * in parallel, the metadata is copied with general.file_type and
 * general.quantization_version set, and the file is written atomically by
 * owl_gguf_write_stream (temporary file + rename: a failure leaves nothing).
 * Tensors are converted one at a time as the writer reaches them, into one
 * buffer the size of the largest: the memory held is about one tensor, and
 * the input pages of a converted tensor are handed back to the kernel (they
 * are read again from the file if needed). */
#include "eval/eval.h"
#include "tensor/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copies every entry of src into dst (deep, keys NUL-terminated). */
static owl_status copy_meta(owl_meta *dst, const owl_meta *src) {
    char key[512];
    for (size_t i = 0; i < src->n; i++) {
        const owl_meta_entry *e = &src->entries[i];
        if (e->key.len >= sizeof key)
            return owl_errorf(OWL_ERR_FORMAT, "quantize: metadata key of %zu bytes is too long", e->key.len);
        memcpy(key, e->key.ptr, e->key.len);
        key[e->key.len] = 0;
        owl_status st = owl_meta_set(dst, key, &e->value);
        if (st != OWL_OK) return st;
    }
    return OWL_OK;
}

/* Converts the rows of `in` to type t into dst (out_row bytes per row). */
static owl_status convert_tensor(const owl_weight *in, owl_dtype t, void *dst, size_t out_row) {
    int64_t ne0 = in->ne[0];
    int64_t nrows = owl_weight_nelem(in) / ne0;
    uint64_t in_row = 0;
    if (!owl_dtype_bytes(in->dtype, (uint64_t)ne0, &in_row))
        return owl_errorf(OWL_ERR_FORMAT, "quantize: tensor '%s': rows of %lld %s values are not whole blocks",
                          in->name, (long long)ne0, owl_dtype_name(in->dtype));
    owl_status st = OWL_OK;
    char err[512] = "";
#pragma omp parallel
    {
        float *row = malloc((size_t)ne0 * sizeof(float));
        owl_status my = row ? OWL_OK : OWL_ERR_NOMEM;
        if (!row) owl_errorf(OWL_ERR_NOMEM, "quantize: tensor '%s': no memory for a row", in->name);
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < nrows; r++) {
            if (my != OWL_OK) continue;
            const uint8_t *src = (const uint8_t *)in->data + (size_t)r * in_row;
            uint8_t *out = (uint8_t *)dst + (size_t)r * out_row;
            my = owl_to_f32(in->dtype, src, row, ne0);
            if (my == OWL_OK) my = owl_from_f32(t, row, out, ne0);
        }
        if (my != OWL_OK) {
#pragma omp critical(owl_quantize_err)
            if (st == OWL_OK) {
                st = my;
                snprintf(err, sizeof err, "%s", owl_last_error());
            }
        }
        free(row);
    }
    if (st != OWL_OK) return owl_errorf(st, "quantize: tensor '%s' to %s: %s", in->name, owl_dtype_name(t), err);
    return OWL_OK;
}

/* Drops the resident pages of [p, p + n) when they lie in one of ws's
 * read-only file mappings (MAP_PRIVATE, never written: the kernel reads
 * them again from the file if touched). Anything else is left alone. */
static void release_input(const owl_weights *ws, const void *p, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p || n == 0) return;
    uintptr_t a = (uintptr_t)p, e = a + (uintptr_t)n;
    for (size_t i = 0; i < ws->n_maps; i++) {
        uintptr_t m0 = (uintptr_t)ws->maps[i].data, m1 = m0 + ws->maps[i].size;
        if (!ws->maps[i].data || a < m0 || e > m1) continue;
        uintptr_t lo = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg, hi = e / (uintptr_t)pg * (uintptr_t)pg;
        if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

typedef struct {
    const owl_weights *ws;
    const owl_weight *outw;
    const owl_quantize_params *params;
    void *buf; /* holds the tensor being written */
} stream_state;

/* The writer's callback: tensor i's bytes, converted now if its type
 * changes. */
static owl_status fill_tensor(void *ud, size_t i, const void **data) {
    stream_state *ss = ud;
    const owl_weight *w = &ss->ws->w[i], *o = &ss->outw[i];
    if (o->dtype == w->dtype) {
        *data = w->data;
    } else {
        uint64_t row = 0;
        owl_dtype_bytes(o->dtype, (uint64_t)w->ne[0], &row);
        owl_status st = convert_tensor(w, o->dtype, ss->buf, (size_t)row);
        if (st != OWL_OK) return st;
        release_input(ss->ws, w->data, w->nbytes);
        *data = ss->buf;
    }
    if (ss->params->on_tensor) ss->params->on_tensor(ss->params->ud, i + 1, ss->ws->n, w, o->dtype);
    return OWL_OK;
}

owl_status owl_eval_quantize(const owl_weights *ws, const char *out_path, const owl_quantize_params *params,
                             owl_quantize_stats *stats) {
    owl_quantize_stats s = {0};
    if (stats) *stats = s;
    if (!ws || !out_path || !params || !params->mix) return owl_errorf(OWL_ERR_ARG, "quantize: missing argument");
    const owl_quant_mix *mix = params->mix;
    owl_quant_plan_info info;
    owl_eval_plan_info(ws, &info);
    owl_quant_plan_state plan = {0};

    owl_weight *outw = calloc(ws->n ? ws->n : 1, sizeof *outw);
    stream_state ss = {.ws = ws, .outw = outw, .params = params};
    owl_meta meta = {0};
    owl_status st = OWL_OK;
    uint64_t largest = 0;
    if (!outw) {
        st = owl_errorf(OWL_ERR_NOMEM, "quantize: no memory for %zu tensors", ws->n);
        goto done;
    }
    /* plan every tensor first: bad types fail before any work */
    for (size_t i = 0; i < ws->n; i++) {
        const owl_weight *w = &ws->w[i];
        bool fallback = false;
        owl_dtype t = owl_eval_mix_type(mix, &info, &plan, w, &fallback);
        outw[i] = *w;
        if (t == OWL_DTYPE_COUNT) {
            st = owl_errorf(OWL_ERR_UNSUPPORTED,
                            "%s: tensor '%s': rows of %lld values do not divide into the 32-value blocks %s "
                            "needs for it (no fallback type)",
                            ws->path, w->name, (long long)w->ne[0], mix->name);
            goto done;
        }
        if (t != w->dtype) {
            const owl_dtype_info *di = owl_dtype_get((uint32_t)w->dtype);
            if (!di || (di->quantized && !params->allow_requantize)) {
                st = owl_errorf(OWL_ERR_UNSUPPORTED,
                                "%s: tensor '%s' is already quantized (%s); requantizing to %s loses more "
                                "(allow it with --allow-requantize)",
                                ws->path, w->name, owl_dtype_name(w->dtype), owl_dtype_name(t));
                goto done;
            }
            if (w->ne[0] <= 0 || owl_weight_nelem(w) % w->ne[0] != 0) {
                st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s' has an empty shape", ws->path, w->name);
                goto done;
            }
            uint64_t row = 0, total = 0;
            if (!owl_dtype_bytes(t, (uint64_t)w->ne[0], &row) ||
                !owl_mul_ok(row, (uint64_t)(owl_weight_nelem(w) / w->ne[0]), &total) || total > SIZE_MAX) {
                st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': %lld values per row do not fit %s", ws->path,
                                w->name, (long long)w->ne[0], owl_dtype_name(t));
                goto done;
            }
            outw[i].dtype = t;
            outw[i].nbytes = total;
            if (total > largest) largest = total;
            if (fallback) s.n_fallback++;
            s.n_quantized++;
        }
        outw[i].data = NULL; /* every tensor comes through fill_tensor, in file order */
        s.in_bytes += w->nbytes;
        s.out_bytes += outw[i].nbytes;
        s.n_tensors++;
    }
    ss.buf = malloc(largest ? (size_t)largest : 1);
    if (!ss.buf) {
        st = owl_errorf(OWL_ERR_NOMEM, "quantize: no memory for a tensor of %llu bytes", (unsigned long long)largest);
        goto done;
    }

    if ((st = copy_meta(&meta, &ws->meta)) != OWL_OK) goto done;
    if ((st = owl_meta_set_u32(&meta, "general.file_type", mix->file_type)) != OWL_OK) goto done;
    if ((st = owl_meta_set_u32(&meta, "general.quantization_version", 2)) != OWL_OK) goto done;
    st = owl_gguf_write_stream(out_path, &meta, outw, ws->n, 0, fill_tensor, &ss);
done:
    free(ss.buf);
    free(outw);
    owl_meta_free(&meta);
    if (stats) *stats = s;
    return st;
}
