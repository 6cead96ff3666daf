/* Reader of SentencePiece's tokenizer.model: a protobuf ModelProto.
 *
 * The wire format: each field is a varint key (field number << 3 | wire
 * type) followed by a varint (type 0), 8 bytes (1), a varint length and that
 * many bytes (2) or 4 bytes (5). We read the fields we need:
 *   ModelProto      1 pieces (repeated message), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum)
 *   TrainerSpec     3 model_type, 35 byte_fallback, 45..48 unk/bos/eos/pad piece
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *                   4 remove_extra_whitespaces, 5 escape_whitespaces
 * and store them as GGUF tokenizer.ggml.* keys. */
#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader;

typedef struct pb_field {
    uint32_t num;
    int wire;
    uint64_t v;          /* wire 0, 1, 5 */
    const uint8_t *data; /* wire 2 */
    size_t len;
} pb_field;

/* 1 = a field was read, 0 = end of the message, -1 = malformed (error set). */
static int pb_next(pb_reader *r, pb_field *f, const char *path, const char *msg) {
    if (r->p >= r->end) return 0;
    uint64_t key = 0;
    int shift = 0;
    for (;;) {
        if (r->p >= r->end) {
            owl_errorf(OWL_ERR_FORMAT, "%s: %s: truncated field key", path, msg);
            return -1;
        }
        uint8_t c = *r->p++;
        if (shift == 63 && c > 1) {
            owl_errorf(OWL_ERR_FORMAT, "%s: %s: varint key too long", path, msg);
            return -1;
        }
        key |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
        if (shift > 63) {
            owl_errorf(OWL_ERR_FORMAT, "%s: %s: varint key too long", path, msg);
            return -1;
        }
    }
    f->wire = (int)(key & 7);
    uint64_t num = key >> 3;
    if (num == 0 || num > 0x1fffffff) {
        owl_errorf(OWL_ERR_FORMAT, "%s: %s: bad field number %llu", path, msg, (unsigned long long)num);
        return -1;
    }
    f->num = (uint32_t)num;
    f->v = 0;
    f->data = NULL;
    f->len = 0;
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire) {
    case 0:
    case 2: {
        uint64_t v = 0;
        shift = 0;
        for (;;) {
            if (r->p >= r->end) {
                owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: truncated varint", path, msg, f->num);
                return -1;
            }
            uint8_t c = *r->p++;
            if (shift == 63 && c > 1) {
                owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: varint too long", path, msg, f->num);
                return -1;
            }
            v |= (uint64_t)(c & 0x7f) << shift;
            if (!(c & 0x80)) break;
            shift += 7;
            if (shift > 63) {
                owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: varint too long", path, msg, f->num);
                return -1;
            }
        }
        if (f->wire == 0) {
            f->v = v;
            return 1;
        }
        left = (size_t)(r->end - r->p);
        if (v > left) {
            owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: length %llu exceeds the %zu bytes left", path, msg,
                       f->num, (unsigned long long)v, left);
            return -1;
        }
        f->data = r->p;
        f->len = (size_t)v;
        r->p += v;
        return 1;
    }
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if (left < n) {
            owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: truncated %zu-byte value", path, msg, f->num, n);
            return -1;
        }
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        f->v = v;
        return 1;
    }
    default:
        owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %u: unsupported wire type %d", path, msg, f->num, f->wire);
        return -1;
    }
}

static bool expect_wire(const pb_field *f, int wire, const char *path, const char *msg, const char *name) {
    if (f->wire == wire) return true;
    owl_errorf(OWL_ERR_FORMAT, "%s: %s: field %s (%u) has wire type %d, expected %d", path, msg, name, f->num,
               f->wire, wire);
    return false;
}

typedef struct spm_spec {
    int model_type; /* 1 unigram (default), 2 bpe, 3 word, 4 char */
    bool byte_fallback;
    owl_str id_pieces[4]; /* unk, bos, eos, pad pieces named in trainer_spec */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    owl_str norm_name;
    size_t charsmap_len;
} spm_spec;

static owl_status read_trainer_spec(const uint8_t *data, size_t len, const char *path, spm_spec *spec) {
    pb_reader r = {data, data + len};
    pb_field f;
    int got;
    const char *msg = "trainer_spec";
    while ((got = pb_next(&r, &f, path, msg)) == 1) {
        switch (f.num) {
        case 3:
            if (!expect_wire(&f, 0, path, msg, "model_type")) return OWL_ERR_FORMAT;
            spec->model_type = (int)(f.v & 0xffffffff);
            break;
        case 35:
            if (!expect_wire(&f, 0, path, msg, "byte_fallback")) return OWL_ERR_FORMAT;
            spec->byte_fallback = f.v != 0;
            break;
        case 45:
        case 46:
        case 47:
        case 48:
            if (!expect_wire(&f, 2, path, msg, "unk/bos/eos/pad_piece")) return OWL_ERR_FORMAT;
            spec->id_pieces[f.num - 45] = (owl_str){(const char *)f.data, f.len};
            break;
        default: break;
        }
    }
    return got < 0 ? OWL_ERR_FORMAT : OWL_OK;
}

static owl_status read_normalizer_spec(const uint8_t *data, size_t len, const char *path, spm_spec *spec) {
    pb_reader r = {data, data + len};
    pb_field f;
    int got;
    const char *msg = "normalizer_spec";
    while ((got = pb_next(&r, &f, path, msg)) == 1) {
        switch (f.num) {
        case 1:
            if (!expect_wire(&f, 2, path, msg, "name")) return OWL_ERR_FORMAT;
            spec->norm_name = (owl_str){(const char *)f.data, f.len};
            break;
        case 2:
            if (!expect_wire(&f, 2, path, msg, "precompiled_charsmap")) return OWL_ERR_FORMAT;
            spec->charsmap_len = f.len;
            break;
        case 3:
        case 4:
        case 5:
            if (!expect_wire(&f, 0, path, msg, "flag")) return OWL_ERR_FORMAT;
            if (f.num == 3) spec->add_dummy_prefix = f.v != 0;
            if (f.num == 4) spec->remove_extra_whitespaces = f.v != 0;
            if (f.num == 5) spec->escape_whitespaces = f.v != 0;
            break;
        default: break;
        }
    }
    return got < 0 ? OWL_ERR_FORMAT : OWL_OK;
}

typedef struct piece_list {
    owl_str *pieces;
    float *scores;
    int32_t *types;
    size_t n, cap;
} piece_list;

static owl_status read_piece(const uint8_t *data, size_t len, const char *path, piece_list *pl) {
    char msg[64];
    snprintf(msg, sizeof msg, "piece %zu", pl->n);
    pb_reader r = {data, data + len};
    pb_field f;
    int got;
    owl_str piece = {NULL, 0};
    bool have_piece = false;
    float score = 0.0f;
    int32_t type = OWL_TOKTYPE_NORMAL;
    while ((got = pb_next(&r, &f, path, msg)) == 1) {
        switch (f.num) {
        case 1:
            if (!expect_wire(&f, 2, path, msg, "piece")) return OWL_ERR_FORMAT;
            piece = (owl_str){(const char *)f.data, f.len};
            have_piece = true;
            break;
        case 2: {
            if (!expect_wire(&f, 5, path, msg, "score")) return OWL_ERR_FORMAT;
            uint32_t bits = (uint32_t)f.v;
            memcpy(&score, &bits, 4);
            break;
        }
        case 3:
            if (!expect_wire(&f, 0, path, msg, "type")) return OWL_ERR_FORMAT;
            if (f.v < 1 || f.v > 6)
                return owl_errorf(OWL_ERR_FORMAT, "%s: %s: bad piece type %llu (1..6 expected)", path, msg,
                                  (unsigned long long)f.v);
            type = (int32_t)f.v;
            break;
        default: break;
        }
    }
    if (got < 0) return OWL_ERR_FORMAT;
    if (!have_piece || piece.len == 0) return owl_errorf(OWL_ERR_FORMAT, "%s: %s: empty or missing piece", path, msg);
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 1024;
        owl_str *np = realloc(pl->pieces, cap * sizeof *np);
        if (np) pl->pieces = np;
        float *ns = realloc(pl->scores, cap * sizeof *ns);
        if (ns) pl->scores = ns;
        int32_t *nt = realloc(pl->types, cap * sizeof *nt);
        if (nt) pl->types = nt;
        if (!np || !ns || !nt) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for %zu pieces", path, cap);
        pl->cap = cap;
    }
    pl->pieces[pl->n] = piece;
    pl->scores[pl->n] = score;
    pl->types[pl->n] = type;
    pl->n++;
    return OWL_OK;
}

/* Id of the piece named `name` (of any type), -1 if absent. */
static int64_t find_piece(const piece_list *pl, owl_str name) {
    for (size_t i = 0; i < pl->n; i++)
        if (pl->pieces[i].len == name.len && memcmp(pl->pieces[i].ptr, name.ptr, name.len) == 0) return (int64_t)i;
    return -1;
}

static owl_status parse_model(const char *path, const uint8_t *data, size_t size, owl_meta *meta) {
    spm_spec spec = {
        .model_type = 1,
        .id_pieces = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"<pad>", 5}},
        .add_dummy_prefix = true,
        .remove_extra_whitespaces = true,
        .escape_whitespaces = true,
    };
    piece_list pl = {0};
    owl_status s = OWL_OK;
    pb_reader r = {data, data + size};
    pb_field f;
    int got;
    bool have_trainer = false;
    while ((got = pb_next(&r, &f, path, "ModelProto")) == 1) {
        if (f.num == 1) {
            if (!expect_wire(&f, 2, path, "ModelProto", "pieces")) goto bad;
            if ((s = read_piece(f.data, f.len, path, &pl)) != OWL_OK) goto done;
        } else if (f.num == 2) {
            if (!expect_wire(&f, 2, path, "ModelProto", "trainer_spec")) goto bad;
            have_trainer = true;
            if ((s = read_trainer_spec(f.data, f.len, path, &spec)) != OWL_OK) goto done;
        } else if (f.num == 3) {
            if (!expect_wire(&f, 2, path, "ModelProto", "normalizer_spec")) goto bad;
            if ((s = read_normalizer_spec(f.data, f.len, path, &spec)) != OWL_OK) goto done;
        }
    }
    if (got < 0) goto bad;
    if (pl.n == 0) {
        s = owl_errorf(OWL_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", path);
        goto done;
    }
    if (pl.n > (1u << 24)) {
        s = owl_errorf(OWL_ERR_FORMAT, "%s: %zu pieces is too many", path, pl.n);
        goto done;
    }
    if (!have_trainer) {
        s = owl_errorf(OWL_ERR_FORMAT, "%s: no trainer_spec (not a SentencePiece model?)", path);
        goto done;
    }
    if (spec.model_type != 2) {
        s = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: trainer_spec.model_type %d: only BPE (2) models are supported", path,
                       spec.model_type);
        goto done;
    }
    if (spec.charsmap_len > 0 || (spec.norm_name.len > 0 && !owl_str_eq(spec.norm_name, "identity")))
        owl_log(OWL_LOG_WARN, "%s: normalizer '%.*s' is not applied (owl uses identity normalization)", path,
                (int)spec.norm_name.len, spec.norm_name.ptr ? spec.norm_name.ptr : "");
    if (!spec.escape_whitespaces) {
        s = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: normalizer_spec.escape_whitespaces=false is not supported", path);
        goto done;
    }

    /* Special ids: the piece named in trainer_spec (as sentencepiece does). */
    int64_t ids[4];
    for (int k = 0; k < 4; k++) ids[k] = find_piece(&pl, spec.id_pieces[k]);
    if (ids[0] < 0) { /* the unknown piece: by type */
        for (size_t i = 0; i < pl.n; i++)
            if (pl.types[i] == OWL_TOKTYPE_UNKNOWN) {
                ids[0] = (int64_t)i;
                break;
            }
    }
    if ((s = owl_meta_set_str(meta, "tokenizer.ggml.model", "llama", 5)) != OWL_OK) goto done;
    if ((s = owl_meta_set_str_arr(meta, "tokenizer.ggml.tokens", pl.pieces, pl.n)) != OWL_OK) goto done;
    if ((s = owl_meta_set_arr(meta, "tokenizer.ggml.scores", OWL_META_F32, pl.scores, pl.n)) != OWL_OK) goto done;
    if ((s = owl_meta_set_arr(meta, "tokenizer.ggml.token_type", OWL_META_I32, pl.types, pl.n)) != OWL_OK) goto done;
    static const char *id_keys[4] = {"tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
                                     "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0 && (s = owl_meta_set_u32(meta, id_keys[k], (uint32_t)ids[k])) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_bos_token", true)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_eos_token", false)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_space_prefix", spec.add_dummy_prefix)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.remove_extra_whitespaces", spec.remove_extra_whitespaces)) !=
        OWL_OK)
        goto done;
    goto done;
bad:
    s = OWL_ERR_FORMAT;
done:
    free(pl.pieces);
    free(pl.scores);
    free(pl.types);
    return s;
}

owl_status owl_spm_model_read_mem(const char *name, const uint8_t *data, size_t size, owl_meta *meta) {
    return parse_model(name, data, size, meta);
}

owl_status owl_spm_model_read(const char *path, owl_meta *meta) {
    char *data = NULL;
    size_t size = 0;
    owl_status s = owl_read_file(path, &data, &size);
    if (s != OWL_OK) return s;
    s = parse_model(path, (const uint8_t *)data, size, meta);
    free(data);
    return s;
}
